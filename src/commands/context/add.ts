import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'

export default class ContextAdd extends BaseCommand<typeof ContextAdd> {
  static override args = {name: Args.string({description: 'context name', required: true})}
  static override description = 'Add a context: a controller URL and the identity file to use with it (kubectl config set-context style). `ztctl enroll TOKEN --context NAME` does this in one step for a new admin.'
  static override examples = [
    '<%= config.bin %> context add prod --controller https://ctrl.example:15012 --identity ~/.ztctl/alice.json',
    '<%= config.bin %> context add staging --controller https://10.0.0.9:15012 --identity staging-admin.json --use',
  ]
  static override flags = {
    controller: Flags.string({description: 'https://HOST:PORT of the controller (default: the one in the identity file)'}),
    identity: Flags.string({description: 'identity file written by `ztctl enroll`', required: true}),
    replace: Flags.boolean({description: 'replace a context of the same name'}),
    use: Flags.boolean({description: 'make it the current context'}),
  }

  async run(): Promise<unknown> {
    const {addContext} = await import('../../lib/client/contexts.js')
    const context = await addContext(this.home, {controller: this.flags.controller, identity: this.flags.identity, name: this.args.name}, {makeCurrent: this.flags.use, replace: this.flags.replace})
    return this.render(context, () => `Context "${context.name}" added (${context.controller}, identity ${context.identity})${this.flags.use ? '; it is current' : ''}`)
  }
}

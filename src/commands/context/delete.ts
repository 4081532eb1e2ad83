import {Args} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'

export default class ContextDelete extends BaseCommand<typeof ContextDelete> {
  static override args = {name: Args.string({description: 'context name', required: true})}
  static override description = 'Delete a context (its identity file stays where it is)'
  static override examples = ['<%= config.bin %> context delete staging']

  async run(): Promise<unknown> {
    const {deleteContext} = await import('../../lib/home/contexts.js')
    const deleted = await deleteContext(this.home, this.args.name)
    return this.render(deleted, () => `Context "${deleted.context.name}" deleted; current: ${deleted.current ?? 'none'}`)
  }
}

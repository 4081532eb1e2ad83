import {Args} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'

export default class ContextUse extends BaseCommand<typeof ContextUse> {
  static override args = {name: Args.string({description: 'context name', required: true})}
  static override description = 'Make a context the current one'
  static override examples = ['<%= config.bin %> context use local']

  async run(): Promise<unknown> {
    const {useContext} = await import('../../lib/home/contexts.js')
    const context = await useContext(this.home, this.args.name)
    return this.render(context, () => `Switched to context "${context.name}" (${context.controller})`)
  }
}

import {Args} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'

export default class ContextRename extends BaseCommand<typeof ContextRename> {
  static override args = {
    from: Args.string({description: 'current name', required: true}),
    to: Args.string({description: 'new name', required: true}),
  }
  static override description = 'Rename a context (the current one stays current)'
  static override examples = ['<%= config.bin %> context rename local lab']

  async run(): Promise<unknown> {
    const {renameContext} = await import('../../lib/home/contexts.js')
    const context = await renameContext(this.home, this.args.from, this.args.to)
    return this.render(context, () => `Context "${this.args.from}" renamed to "${context.name}"`)
  }
}

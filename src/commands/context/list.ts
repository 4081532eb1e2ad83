import {BaseCommand} from '../../lib/cli/base-command.js'

export default class ContextList extends BaseCommand<typeof ContextList> {
  static override hiddenAliases = ['context:ls']
  static override description = 'List the contexts (controller URL + identity); * marks the current one'
  static override examples = ['<%= config.bin %> context list', '<%= config.bin %> context list -o json']

  async run(): Promise<unknown> {
    const {listContexts} = await import('../../lib/client/contexts.js')
    const contexts = await listContexts(this.home)
    return this.render(contexts, () => this.table(contexts, [
      {header: 'CURRENT', value: (context) => (context.current ? '*' : '')},
      {header: 'NAME', value: (context) => context.name},
      {header: 'CONTROLLER', value: (context) => context.controller},
      {header: 'IDENTITY', value: (context) => context.identity},
      {header: 'KIND', value: (context) => context.kind ?? 'local'},
    ]))
  }
}

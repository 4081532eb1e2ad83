import {ProxyConfigCommand, proxyConfigAliases} from '../../lib/cli/proxy-config-command.js'
import {allViews} from '../../lib/cli/proxy-config-views.js'

export default class ProxyConfigAll extends ProxyConfigCommand {
  static override hiddenAliases = proxyConfigAliases('all')
  static override description = "Every view of the agent's state; with -o json|yaml, the raw /config_dump"
  static override examples = ['<%= config.bin %> <%= command.id %> agent-a', '<%= config.bin %> <%= command.id %> agent-a -o json > dump.json']

  async run() {
    const dump = await this.dump()
    return this.render(dump, () =>
      allViews
        .map(([title, view]) => {
          const rows = (view.rows as (d: typeof dump) => unknown[])(dump)
          const body = rows.length === 0 ? view.empty : this.table(rows, view.columns as never)
          return `------ ${title} ------\n${body}`
        })
        .join('\n\n'),
    )
  }
}

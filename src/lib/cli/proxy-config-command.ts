// The shared shape of `ztctl proxy-config <view> [AGENT]`: one abstract command, one file per view.
import {Args, Flags} from '@oclif/core'

import type {ConfigDump} from '../proxy/daemon/agent.js'
import {BaseCommand} from './base-command.js'
import {TOPIC_ALIASES} from './command-lookup.js'
import type {Column} from './render.js'

export interface ProxyConfigView<Row> {
  columns: Column<Row>[]
  empty: string
  rows: (dump: ConfigDump) => Row[]
}

/** `proxy-config VIEW` is also `pc VIEW` and `zc VIEW` (istioctl's spellings), and each synonym under all three. */
export function proxyConfigAliases(view: string, ...synonyms: string[]): string[] {
  return ['proxy-config', ...Object.keys(TOPIC_ALIASES)].flatMap((topic) => [view, ...synonyms].map((name) => `${topic}:${name}`)).filter((id) => id !== `proxy-config:${view}`)
}

export abstract class ProxyConfigCommand extends BaseCommand<typeof ProxyConfigCommand> {
  static override args = {
    agent: Args.string({description: 'name of a local agent (found through its ready file in $ZTCTL_HOME/agents/); default: the agent at --admin'}),
  }
  static override flags = {
    admin: Flags.string({description: 'admin address of the agent (HOST:PORT)', exclusive: ['file']}),
    file: Flags.string({char: 'f', description: 'read a saved dump (`proxy-config all -o json`) instead; - for stdin'}),
  }

  protected async dump(): Promise<ConfigDump> {
    const {fetchConfigDump} = await import('../inspect/proxy-config.js')
    return fetchConfigDump({admin: this.flags.admin, agent: this.args.agent, file: this.flags.file, home: this.home})
  }

  protected async show<Row>(view: ProxyConfigView<Row>): Promise<Row[]> {
    const rows = view.rows(await this.dump())
    return this.render(rows, () => (rows.length === 0 ? view.empty : this.table(rows, view.columns)))
  }
}

// The shared shape of `ztctl proxy-config <view> [AGENT | POD[.NAMESPACE]]`: one abstract command, one file
// per view. In a cluster (a Kubernetes flag, or a current context of kind kubernetes) the dump comes from
// the node agent of the pod's node through a port-forward; otherwise from an agent on this host.
import {Args, Flags} from '@oclif/core'

import type {ConfigDump} from '../proxy/daemon/agent.js'
import {BaseCommand} from './base-command.js'
import {kubernetesFlags} from './flag-groups.js'
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
    agent: Args.string({
      description: 'in a cluster: POD[.NAMESPACE], whose node agent answers; else the name of a local agent (found through its ready file in $ZTCTL_HOME/agents/); default: the agent at --admin',
    }),
  }
  static override flags = {
    ...kubernetesFlags,
    admin: Flags.string({description: 'admin address of the agent (HOST:PORT)', exclusive: ['file', 'node']}),
    file: Flags.string({char: 'f', description: 'read a saved dump (`proxy-config all -o json`) instead; - for stdin', exclusive: ['node']}),
    node: Flags.string({description: "in a cluster: the node whose agent answers (default: the pod's node, or the only node agent)", helpGroup: 'KUBERNETES'}),
  }

  protected async dump(): Promise<ConfigDump> {
    const {fetchConfigDump} = await import('../inspect/proxy-config.js')
    const cluster = this.flags.admin || this.flags.file ? undefined : await this.cluster()
    if (!cluster) return fetchConfigDump({admin: this.flags.admin, agent: this.args.agent, file: this.flags.file, home: this.home})
    const {withNodeAgentAdmin} = await import('../kube/node-agents.js')
    const selector = {node: this.flags.node, pod: this.args.agent, podNamespace: this.flags.namespace}
    return withNodeAgentAdmin(cluster, selector, (admin) => fetchConfigDump({admin, home: this.home}))
  }

  private async cluster() {
    const {clusterFromFlags} = await import('../kube/node-agents.js')
    return clusterFromFlags(this.home, this.argv, this.flags)
  }

  protected async show<Row>(view: ProxyConfigView<Row>): Promise<Row[]> {
    const rows = view.rows(await this.dump())
    return this.render(rows, () => (rows.length === 0 ? view.empty : this.table(rows, view.columns)))
  }
}

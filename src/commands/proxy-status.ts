import {BaseCommand} from '../lib/cli/base-command.js'
import {controllerFlags, kubernetesFlags, watchFlags} from '../lib/cli/flag-groups.js'
import {formatAge} from '../lib/cli/render.js'
import {type AgentSyncStatus, describeHubs} from '../lib/mesh/status.js'

export default class ProxyStatus extends BaseCommand<typeof ProxyStatus> {
  static override description =
    "Every agent the controller knows, whether it is connected, whether it has applied the controller's latest configuration version (SYNCED), not yet (STALE), or could not apply part of it (ERROR, with the agent's REASON), the agent's software VERSION, and its hub attachments (HUBS: state, round trip, relayed streams). In a cluster (--kubeconfig, --kube-context, -n NAMESPACE of the install, or a context of kind kubernetes): one row per node-agent pod with its node and readiness beside that state."
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --watch',
    '<%= config.bin %> <%= command.id %> -o json',
    '<%= config.bin %> <%= command.id %> --kubeconfig ~/.kube/config -n ztctl-system',
  ]
  static override flags = {...controllerFlags, ...kubernetesFlags, ...watchFlags}
  static override summary = 'Configuration sync status of every agent'

  async run() {
    const cluster = await this.cluster()
    if (cluster) return this.clusterStatus(cluster)
    return this.watch(() => this.withController(async (api) => (await import('../lib/mesh/status.js')).proxyStatus(api)), (result) =>
      result.agents.length === 0
        ? 'No agent has connected yet. Start one with `ztctl agent run -i IDENTITY.json`.'
        : this.table(result.agents, [
            {header: 'NAME', value: (a) => a.name},
            ...syncColumns((a: AgentSyncStatus) => a),
            {header: 'HBONE', value: (a) => a.hbone || '(hubs only)'},
            // only in a mesh with hubs: one without keeps its narrower table
            ...(result.agents.some((a) => a.hubs?.length) ? [{header: 'HUBS', value: (a: (typeof result.agents)[number]) => describeHubs(a.hubs)}] : []),
            {header: 'LAST SEEN', value: (a) => (a.lastSeen ? formatAge(Date.parse(a.lastSeen)) + ' ago' : undefined)},
            {header: 'VERSION', value: (a) => a.software},
            {header: 'REASON', value: (a) => a.reason},
          ]),
    )
  }

  private async cluster() {
    if (this.flags.context) return undefined
    const {clusterFromFlags} = await import('../lib/kube/node-agents.js')
    const target = await clusterFromFlags(this.home, this.argv, this.flags)
    // Here -n is the install's namespace (where the node agents run).
    return target && {...target, installNamespace: this.flags.namespace ?? target.installNamespace}
  }

  private async clusterStatus(target: import('../lib/kube/node-agents.js').ClusterAgentTarget) {
    const {clusterProxyStatus} = await import('../lib/kube/node-agents.js')
    return this.watch(() => clusterProxyStatus(target), (result) =>
      result.agents.length === 0
        ? `No node agent pod in ${target.installNamespace}. Install the mesh with \`ztctl install\`.`
        : this.table(result.agents, [
            {header: 'NAME', value: (a) => `${a.name}.${target.installNamespace}`},
            {header: 'NODE', value: (a) => a.node},
            {header: 'READY', value: (a) => (a.ready ? 'yes' : `no (${a.phase ?? 'unknown'})`)},
            ...syncColumns((a: {sync?: AgentSyncStatus}) => a.sync),
            {header: 'RESTARTS', value: (a) => a.restarts},
            {header: 'VERSION', value: (a) => a.sync?.software},
            {header: 'REASON', value: (a) => a.sync?.reason},
          ]),
    )
  }
}

/** STATUS, CONFIG (acked/controller) and ONLINE of an agent's sync state (a pod whose agent never connected: NOT CONNECTED). */
function syncColumns<Row>(sync: (row: Row) => AgentSyncStatus | undefined) {
  return [
    {header: 'STATUS', value: (row: Row) => sync(row)?.status ?? 'NOT CONNECTED'},
    {header: 'CONFIG', value: (row: Row) => {
      const state = sync(row)
      return state ? `${state.ackedVersion ?? '-'}/${state.controllerVersion}` : '-'
    }},
    {header: 'ONLINE', value: (row: Row) => (sync(row)?.online ? 'yes' : 'no')},
  ]
}

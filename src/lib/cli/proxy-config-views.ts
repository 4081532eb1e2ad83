// Columns of each proxy-config view, following `istioctl ztunnel-config` (reference §5.3).
import type {ConnectionRow, HubRow, PolicyRow, SecretRow, ServiceRow, WorkloadRow} from '../inspect/proxy-config.js'
import {connectionRows, hubRows, policyRows, secretRows, serviceRows, workloadRows} from '../inspect/proxy-config.js'
import type {AppDump, ConfigDump} from '../proxy/daemon/agent.js'
import type {ProxyConfigView} from './proxy-config-command.js'

export const workloadsView: ProxyConfigView<WorkloadRow> = {
  columns: [
    {header: 'NAMESPACE', value: (r) => r.namespace},
    {header: 'POD NAME', value: (r) => r.name},
    {header: 'ADDRESS', value: (r) => r.address},
    {header: 'NODE', value: (r) => r.node},
    {header: 'WAYPOINT', value: (r) => r.waypoint},
    {header: 'PROTOCOL', value: (r) => r.protocol},
    // open connections of the pods this agent serves in-pod ('-': not served here)
    {header: 'CONNECTIONS', value: (r) => r.connections},
  ],
  empty: 'No workloads known to this agent.',
  rows: workloadRows,
}

export const servicesView: ProxyConfigView<ServiceRow> = {
  columns: [
    {header: 'NAMESPACE', value: (r) => r.namespace},
    {header: 'SERVICE NAME', value: (r) => r.name},
    {header: 'SERVICE VIP', value: (r) => r.vip},
    {header: 'WAYPOINT', value: (r) => r.waypoint},
    {header: 'ENDPOINTS', value: (r) => r.endpoints},
  ],
  empty: 'No services known to this agent.',
  rows: serviceRows,
}

export const policiesView: ProxyConfigView<PolicyRow> = {
  columns: [
    {header: 'NAMESPACE', value: (r) => r.namespace},
    {header: 'POLICY NAME', value: (r) => r.name},
    {header: 'ACTION', value: (r) => r.action},
    {header: 'SCOPE', value: (r) => r.scope},
    {header: 'MATCH', value: (r) => r.match},
  ],
  empty: 'No policies: connections are allowed by default.',
  rows: policyRows,
}

export const secretsView: ProxyConfigView<SecretRow> = {
  columns: [
    {header: 'NAME', value: (r) => r.name},
    {header: 'TYPE', value: (r) => r.type},
    {header: 'STATUS', value: (r) => r.status},
    {header: 'VALID CERT', value: (r) => r.valid},
    {header: 'SERIAL NUMBER', value: (r) => r.serial},
    {header: 'NOT AFTER', value: (r) => r.notAfter},
    {header: 'NOT BEFORE', value: (r) => r.notBefore},
  ],
  empty: 'No certificates.',
  rows: (dump) => secretRows(dump),
}

export const connectionsView: ProxyConfigView<ConnectionRow> = {
  columns: [
    {header: 'WORKLOAD', value: (r) => r.workload},
    {header: 'DIRECTION', value: (r) => r.direction},
    {header: 'LOCAL', value: (r) => r.local},
    {header: 'REMOTE', value: (r) => r.remote},
    {header: 'REMOTE TARGET', value: (r) => r.remoteTarget},
    {header: 'PROTOCOL', value: (r) => r.protocol},
  ],
  empty: 'No open connections.',
  rows: connectionRows,
}

/** What an app is set to do, in a few words (the shell, the commands, the files). */
function appDetails(app: AppDump, dump: ConfigDump): string | undefined {
  if (!app.enabled) return undefined
  if (app.app === 'terminal') return `shell ${app.shell?.join(' ') ?? '(default)'}`
  if (app.app === 'file') return `${dump.files.length} file${dump.files.length === 1 ? '' : 's'} published`
  const parts = [...(app.commands ?? []), ...(app.scriptDir ? [`${app.scriptDir}/*`] : []), ...(app.anyCommand ? ['any command'] : [])]
  return parts.length > 0 ? parts.join(', ') : 'no command allowed'
}

export const appsView: ProxyConfigView<AppDump & {details?: string}> = {
  columns: [
    {header: 'APP', value: (r) => r.app},
    {header: 'STATE', value: (r) => (r.enabled ? 'on' : 'off')},
    {header: 'ALLOWED', value: (r) => (r.enabled ? (r.allow.join(',') || '(nobody)') : undefined)},
    {header: 'SESSIONS', value: (r) => r.sessions},
    {header: 'DETAILS', value: (r) => r.details},
  ],
  empty: 'This agent reports no apps (an older agent).',
  rows: (dump) => (dump.apps ?? []).map((app) => ({...app, details: appDetails(app, dump)})),
}

export const filesView: ProxyConfigView<ConfigDump['files'][number]> = {
  columns: [
    {header: 'NAME', value: (r) => r.name},
    {header: 'PATH', value: (r) => r.path},
    {header: 'SIZE', value: (r) => r.size},
    {header: 'SHA-256', value: (r) => r.sha256 ?? (r.error ? undefined : 'hashing…')},
    {header: 'ERROR', value: (r) => r.error},
  ],
  empty: 'This agent publishes no files.',
  rows: (dump) => dump.files ?? [],
}

export const hubsView: ProxyConfigView<HubRow> = {
  columns: [
    {header: 'HUB', value: (r) => r.hub},
    {header: 'ADDRESS', value: (r) => r.address},
    {header: 'STATE', value: (r) => r.state},
    {header: 'RTT', value: (r) => r.rtt},
    {header: 'STREAMS', value: (r) => r.streams},
    {header: 'LAST ERROR', value: (r) => r.error},
  ],
  empty: 'No hubs: this agent was started without --hub.',
  rows: hubRows,
}

export const allViews = [
  ['WORKLOAD INFO', workloadsView],
  ['SERVICE INFO', servicesView],
  ['POLICY INFO', policiesView],
  ['SECRET INFO', secretsView],
  ['CONNECTIONS INFO', connectionsView],
  ['APPS INFO', appsView],
  ['FILES INFO', filesView],
  ['HUB INFO', hubsView],
] as const

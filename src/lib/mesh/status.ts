// proxy-status: each agent's acknowledged configuration version against the controller's, and what it
// could not apply (with the agent's reason), as istioctl proxy-status shows SYNCED/STALE per proxy, and
// its hub attachments.
import type {HubAttachment, ResourceStatus} from '../config/types.js'
import type {AgentList, ControllerApi} from './api.js'

export interface AgentSyncStatus {
  ackedVersion?: number
  controllerVersion: number
  /** the resources it could not apply at ackedVersion */
  errors: ResourceStatus[]
  hbone?: string
  /** what the agent reports about its hubs (`agent run --hub`), while it is connected */
  hubs?: HubAttachment[]
  lastSeen?: string
  name: string
  online: boolean
  /** the first error, as one line ("inbound tcp/web@agent-a: cannot listen …"); more are counted */
  reason?: string
  /** the agent's software version */
  software?: string
  status: 'ERROR' | 'NEVER CONNECTED' | 'STALE' | 'SYNCED'
}

export async function proxyStatus(api: ControllerApi): Promise<{agents: AgentSyncStatus[]; version: number}> {
  const list = await api.request<AgentList>('GET', '/v1/agents')
  const agents = list.agents
    .map((agent): AgentSyncStatus => {
      const errors = (agent.resources ?? []).filter((status) => status.state === 'error')
      const [first] = errors
      const status = agent.ackedVersion === undefined ? 'NEVER CONNECTED' : errors.length > 0 ? 'ERROR' : agent.ackedVersion >= list.version ? 'SYNCED' : 'STALE'
      return {
        ackedVersion: agent.ackedVersion,
        controllerVersion: list.version,
        errors,
        hbone: agent.hbone,
        hubs: agent.hubs,
        lastSeen: agent.lastSeen,
        name: agent.name,
        online: agent.online,
        reason: first ? `${first.kind} ${first.key}: ${first.reason ?? 'not applied'}${errors.length > 1 ? ` (+${errors.length - 1} more)` : ''}` : undefined,
        software: agent.software,
        status,
      }
    })
    .sort((a, b) => a.name.localeCompare(b.name))
  return {agents, version: list.version}
}

/** `hub-1 (0.4ms, 2 streams), hub-2 down` */
export function describeHubs(hubs: HubAttachment[] | undefined): string | undefined {
  if (!hubs || hubs.length === 0) return undefined
  return hubs.map((hub) => {
    const name = hub.hub ?? hub.address
    if (hub.state !== 'connected') return `${name} ${hub.state}`
    const rtt = hub.rttMs === undefined ? '' : `${hub.rttMs.toFixed(1)}ms, `
    return `${name} (${rtt}${hub.streams} stream${hub.streams === 1 ? '' : 's'})`
  }).join(', ')
}

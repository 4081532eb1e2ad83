// proxy-status: each agent's acknowledged configuration version against the controller's.
import type {HubAttachment} from '../config/types.js'
import type {AgentList, ControllerApi} from './api.js'

export interface AgentSyncStatus {
  ackedVersion?: number
  controllerVersion: number
  hbone?: string
  /** what the agent reports about its hubs (`agent run --hub`), while it is connected */
  hubs?: HubAttachment[]
  lastSeen?: string
  name: string
  online: boolean
  status: 'NEVER CONNECTED' | 'STALE' | 'SYNCED'
}

export async function proxyStatus(api: ControllerApi): Promise<{agents: AgentSyncStatus[]; version: number}> {
  const list = await api.request<AgentList>('GET', '/v1/agents')
  const agents = list.agents
    .map((agent): AgentSyncStatus => ({
      ackedVersion: agent.ackedVersion,
      controllerVersion: list.version,
      hbone: agent.hbone,
      hubs: agent.hubs,
      lastSeen: agent.lastSeen,
      name: agent.name,
      online: agent.online,
      status: agent.ackedVersion === undefined ? 'NEVER CONNECTED' : agent.ackedVersion >= list.version ? 'SYNCED' : 'STALE',
    }))
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

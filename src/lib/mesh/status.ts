// proxy-status: each agent's acknowledged configuration version against the controller's.
import type {AgentList, ControllerApi} from './api.js'

export interface AgentSyncStatus {
  ackedVersion?: number
  controllerVersion: number
  hbone?: string
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
      lastSeen: agent.lastSeen,
      name: agent.name,
      online: agent.online,
      status: agent.ackedVersion === undefined ? 'NEVER CONNECTED' : agent.ackedVersion >= list.version ? 'SYNCED' : 'STALE',
    }))
    .sort((a, b) => a.name.localeCompare(b.name))
  return {agents, version: list.version}
}

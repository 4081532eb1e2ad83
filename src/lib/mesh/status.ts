// proxy-status: each agent's acknowledged configuration version against the controller's, and what it
// could not apply (with the agent's reason), as istioctl proxy-status shows SYNCED/STALE per proxy.
import type {ResourceStatus} from '../config/types.js'
import type {AgentList, ControllerApi} from './api.js'

export interface AgentSyncStatus {
  ackedVersion?: number
  controllerVersion: number
  /** the resources it could not apply at ackedVersion */
  errors: ResourceStatus[]
  hbone?: string
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

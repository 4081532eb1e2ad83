// What mesh operations need from the controller: one authenticated JSON request at a time.
// src/lib/client's ControllerClient satisfies it; keeping the interface here keeps this domain testable
// against any real controller connection.
import type {HubAttachment, ResourceStatus} from '../config/types.js'

export type Method = 'DELETE' | 'GET' | 'POST' | 'PUT'

export interface ControllerApi {
  request<T>(method: Method, path: string, body?: unknown): Promise<T>
}

export interface ResourceList<T> {
  items: T[]
  version: number
}

export interface AgentStatus {
  ackedVersion?: number
  hbone?: string
  hubs?: HubAttachment[]
  lastSeen?: string
  name: string
  online: boolean
  /** per-resource status of ackedVersion (the agent's own tunnels, and whatever it could not apply) */
  resources?: ResourceStatus[]
  /** the agent's software version */
  software?: string
  spiffe?: string
}

export interface AgentList {
  agents: AgentStatus[]
  version: number
}

export const resourcePath = (kind: string, key?: string): string =>
  key === undefined ? `/v1/resources/${kind}` : `/v1/resources/${kind}/${encodeURIComponent(key)}`

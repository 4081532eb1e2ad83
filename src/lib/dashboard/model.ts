// What the dashboard's server sends its page: one snapshot of the mesh every few seconds (server-sent
// events), and the answers to its actions. Types only: the page (web/) imports this file too.
import type {Policy} from '../config/types.js'
import type {Explanation} from '../mesh/explain.js'

export type {Explanation, Policy}

/** How the dashboard reaches an agent's admin port (/config_dump) and metrics. */
export type AdminState = 'reachable' | 'unknown' | 'unreachable'

export interface AgentView {
  ackedVersion?: number
  /** admin address, when this dashboard knows one (a local agent's ready file, or --agent-admin) */
  admin?: string
  adminState: AdminState
  /** the leaf certificate the agent serves with (from its /config_dump) */
  certNotAfter?: string
  /** live connections in the agent's connection table */
  connections?: number
  dataPath?: string
  hbone?: string
  lastSeen?: string
  name: string
  online: boolean
  /** why the agent is not in sync, when the controller says (proxy-status REASON) */
  reason?: string
  spiffe?: string
  status: string
}

export type NodeKind = 'agent' | 'listener' | 'source' | 'target'

export interface GraphNode {
  /** second line of the label */
  detail?: string
  id: string
  kind: NodeKind
  label: string
  /** agents: online / offline / stale; others: none */
  state?: 'offline' | 'online' | 'stale'
}

export interface EdgeStats {
  /** live connections (the connection tables) */
  active: number
  /** bytes both ways, counted by the agents when a connection closes (as ztunnel does) */
  bytes: number
  bytesPerSecond: number
  /** connections that failed for another reason (dial errors, no upstream) */
  errors: number
  /** which agent's counters these are: the hosting one (destination) or, when it is out of reach, the source */
  reporter: 'destination' | 'source'
  /** connections refused by policy, revocation or identity (response flags DENY, CERT_REVOKED, IDENTITY_ERROR) */
  refused: number
  /** a refusal in the last REFUSAL_WINDOW_MS */
  refusedRecently: boolean
  /** connections opened in total (including refused ones), since the agent started */
  total: number
}

export type EdgeKind = 'inbound' | 'mesh' | 'outbound'

export interface GraphEdge {
  id: string
  kind: EdgeKind
  service: string
  source: string
  stats?: EdgeStats
  target: string
}

export interface ConnectionView {
  /** the agent whose table lists it */
  agent: string
  destinationAddress: string
  destinationSpiffe?: string
  direction: string
  id: string
  service: string
  sourceAddress: string
  sourceSpiffe?: string
  startedAt: string
  target: string
}

export interface IdentityView {
  admin: boolean
  certNotAfter?: string
  createdAt: string
  enrolledAt?: string
  name: string
  /** undefined: not an agent the controller has seen */
  online?: boolean
  roles: string[]
  /** the identity this dashboard acts as (it cannot revoke itself) */
  self: boolean
  spiffe: string
  status: string
}

export interface DashboardSnapshot {
  agents: AgentView[]
  at: string
  connections: ConnectionView[]
  context: {controller: string; name: string}
  graph: {edges: GraphEdge[]; nodes: GraphNode[]}
  identities: IdentityView[]
  policies: Policy[]
  /** what could not be read this round, in words */
  problems: string[]
  services: string[]
  version: number
}

/** A change the page asked for, once the agents applied it (or the wait ran out). */
export interface ChangeResult {
  /** online agents that acknowledged the new version */
  applied: string[]
  message: string
  /** online agents that had not acknowledged it when the wait ran out */
  pending: string[]
  version: number
}

export interface ErrorBody {
  error: {code: string; message: string; suggestion?: string}
}

export const REFUSAL_WINDOW_MS = 30_000

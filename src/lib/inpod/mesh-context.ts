// The mesh router's context and what it routes, apart from mesh.ts so that the engine-specific halves
// (native-mesh.ts) can name them without importing the router back.
import type net from 'node:net'

import type {HboneEngine} from '../proxy/hbone/hbone-engine.js'
import type {Logger} from '../proxy/observe/log.js'
import type {Metrics} from '../proxy/observe/metrics.js'
import type {ConnectionTracker} from '../proxy/paths/connection.js'
import type {MeshState} from '../proxy/state/state.js'
import type {WorkloadCertificates} from './certs.js'

/** What the agent lends the mesh router (part of the runtime's InpodAgentContext). */
export interface MeshAgentContext {
  /** the native engine when the agent's data path is native (and the in-pod path may use it); else node:http2 */
  engine?: HboneEngine
  logger: () => Logger
  metrics: Metrics
  node: string
  state: () => MeshState
  timing?: {idleTimeoutMs?: number; keepaliveIntervalMs?: number; keepaliveTimeoutMs?: number}
  tracker: ConnectionTracker
  trustDomain: string
}

/** What the mesh router needs: the agent's context plus the pods' certificates. */
export type MeshContext = MeshAgentContext & {
  certs: WorkloadCertificates
}

/** A captured outbound connection: a node:net socket, or one the addon accepted (the native path). */
export type Captured = {kind: 'socket'; socket: net.Socket} | {kind: 'native'; remote: string; tunnelId: number}

// Admission of a CONNECT to a pod's own 15008, shared by both engines (node:http2 and the native one):
// the method, a target that is one of that pod's own addresses (never an open relay), an identity of
// this trust domain, revocation and the policies (`ns:`, `sa:`, `spiffe://` sources), with the
// connection's record and metric labels either way.
import {formatHostPort, type HostPort, normalizeIp, parseHostPort} from '../proxy/address.js'
import type {ResponseFlag, TrafficLabels} from '../proxy/observe/metrics.js'
import type {ConnectionRecord} from '../proxy/observe/registry.js'
import type {ConnectionTracker} from '../proxy/paths/connection.js'
import type {ConnectRequest, SessionPeer} from '../proxy/paths/hbone-admission.js'
import type {MeshState} from '../proxy/state/state.js'
import {INPOD_HBONE_PORT, type Workload} from './workloads.js'

/** The policy "service" of a pod: `<namespace>/<name>` (policies without services apply to every pod). */
export const workloadService = (namespace: string, name: string): string => `${namespace}/${name}`

export interface InpodAdmissionContext {
  node: string
  spiffeOf: (workload: Workload) => string
  state: MeshState
  tracker: ConnectionTracker
}

export type InpodAdmission =
  | {allowed: true; labels: TrafficLabels; record: ConnectionRecord; target: HostPort}
  | {allowed: false; flag: ResponseFlag; labels: TrafficLabels; message: string; record: ConnectionRecord; status: number}

export function admitInpodConnect(workload: Workload, request: ConnectRequest, peer: SessionPeer, context: InpodAdmissionContext): InpodAdmission {
  const {state, tracker} = context
  const {authority} = request
  const target = parseHostPort(authority)
  const {namespace, name} = workload.add.workload
  const record: ConnectionRecord = {
    destinationAddress: formatHostPort({host: workload.add.ips[0] ?? '0.0.0.0', port: INPOD_HBONE_PORT}), destinationAgent: context.node,
    destinationSpiffe: context.spiffeOf(workload), direction: 'inbound', hboneTarget: typeof authority === 'string' ? authority.slice(0, 300) : '',
    id: tracker.newId(), peerSerial: peer.serial, service: workloadService(namespace, name), sourceAddress: peer.source, sourceSpiffe: peer.spiffe, startedAt: Date.now(),
  }
  const labels: TrafficLabels = {
    connectionSecurityPolicy: 'mutual_tls', destinationPrincipal: record.destinationSpiffe, destinationService: record.service, destinationWorkload: name,
    reporter: 'destination', sourcePrincipal: peer.spiffe,
  }
  const refuse = (status: number, flag: ResponseFlag, message: string): InpodAdmission => ({allowed: false, flag, labels, message, record, status})
  if (request.method !== 'CONNECT') return refuse(400, 'CONNECT', `expected method CONNECT, got ${String(request.method).slice(0, 20)}`)
  if (!target) return refuse(400, 'CONNECT', `bad :authority ${JSON.stringify(record.hboneTarget)}: expected host:port`)
  if (!workload.add.ips.some((ip) => normalizeIp(ip) === normalizeIp(target.host))) {
    return refuse(400, 'CONNECT', `${formatHostPort(target)} is not an address of workload ${namespace}/${name} (not an open relay)`)
  }

  if (state.isRevoked(peer.serial)) return refuse(401, 'CERT_REVOKED', `connection closed: peer certificate ${peer.serial} revoked`)
  if (!peer.spiffe) return refuse(401, 'IDENTITY_ERROR', 'the peer certificate carries no SPIFFE ID')
  const decision = state.authorize({destinationPort: target.port, service: record.service, sourceAddress: peer.ip, sourceSpiffe: peer.spiffe})
  if (!decision.allowed) return refuse(401, 'DENY', `connection closed due to policy rejection: ${decision.reason}`)
  return {allowed: true, labels, record, target}
}

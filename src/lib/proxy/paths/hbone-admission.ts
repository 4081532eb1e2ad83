// Admission of an HBONE CONNECT, shared by both data paths (node:http2 in hbone-server.ts, the native one
// in native-server.ts): method, :authority, revocation, identity, "is this a target I serve?" (a target of
// a hosted tunnel, or one my proxy exit allows: never an open relay) and L4 authorization, with the
// connection's record and metric labels either way.
import {formatHostPort, type HostPort, parseHostPort} from '../address.js'
import type {ProxyExit} from '../../config/types.js'
import {appOfTarget, isAppService} from '../state/apps.js'
import {identityNameFromSpiffe, workloadFromSpiffe} from '../state/authz.js'
import {excludedAddress} from '../state/exits.js'
import type {ResponseFlag, TrafficLabels} from '../observe/metrics.js'
import type {ConnectionRecord} from '../observe/registry.js'
import {PROXY_SERVICE, type MeshState} from '../state/state.js'

const MAX_FORWARDED_LENGTH = 1024

/** The client of a session: its certificate identity and address, worked out once per session. */
export interface SessionPeer {
  ip: string
  serial?: string
  /** `ip:port` */
  source: string
  spiffe?: string
}

export interface ConnectRequest {
  authority: unknown
  forwarded?: unknown
  method: unknown
}

export interface AdmissionContext {
  /** our HBONE address as peers dial it (dst.addr) */
  advertise: string
  id: number
  selfSpiffe: string
  state: MeshState
}

export type Admission =
  | {
      allowed: true
      /** a proxy exit's: the resolved address must pass its excluded CIDRs (checkResolved) */
      exit?: ProxyExit
      labels: TrafficLabels
      record: ConnectionRecord
      target: HostPort
    }
  | {
      allowed: false
      /** the peer's certificate is revoked: end its whole session after answering */
      closeSession?: boolean
      /** words for the client (the ztctl-reason header); only app refusals carry them, a tunnel's stay silent as ztunnel's */
      clientReason?: string
      flag: ResponseFlag
      labels: TrafficLabels
      message: string
      record: ConnectionRecord
      status: number
    }

export function admitConnect(request: ConnectRequest, peer: SessionPeer, context: AdmissionContext): Admission {
  const {state} = context
  const authority = request.authority
  const target = parseHostPort(authority)
  const serviceHint = forwardedHost(request.forwarded)
  // Every field spelled out from the start: the objects keep one shape.
  const record: ConnectionRecord = {
    destinationAddress: context.advertise,
    destinationAgent: state.self.name,
    destinationSpiffe: context.selfSpiffe,
    direction: 'inbound',
    hboneTarget: typeof authority === 'string' ? authority.slice(0, 300) : '',
    id: context.id,
    peerSerial: peer.serial,
    service: 'unknown',
    sourceAddress: peer.source,
    sourceSpiffe: peer.spiffe,
    startedAt: Date.now(),
  }
  const labels: TrafficLabels = {
    destinationPrincipal: record.destinationSpiffe,
    destinationService: undefined,
    destinationWorkload: state.self.name,
    reporter: 'destination',
    sourcePrincipal: peer.spiffe,
    sourceWorkload: undefined,
  }
  const refuse = (status: number, flag: ResponseFlag, message: string, closeSession = false, clientReason?: string): Admission =>
    ({allowed: false, clientReason, closeSession, flag, labels, message, record, status})
  if (request.method !== 'CONNECT') return refuse(400, 'CONNECT', `expected method CONNECT, got ${String(request.method).slice(0, 20)}`)
  if (!target) return refuse(400, 'CONNECT', `bad :authority ${JSON.stringify(record.hboneTarget)}: expected host:port`)
  if (state.isRevoked(peer.serial)) return refuse(401, 'CERT_REVOKED', `connection closed: peer certificate ${peer.serial} revoked`, true)
  // An identity, or a redirected pod (`ns/NS/sa/SA`) dialling a mesh service from its node agent.
  const workload = workloadFromSpiffe(peer.spiffe, state.self.trustDomain)
  const sourceIdentity = identityNameFromSpiffe(peer.spiffe, state.self.trustDomain) ?? (workload && `${workload.namespace}/${workload.serviceAccount}`)
  if (!sourceIdentity) return refuse(401, 'IDENTITY_ERROR', `the peer certificate carries no identity of trust domain ${state.self.trustDomain} (${peer.spiffe ?? 'no SPIFFE ID'})`)
  const tunnel = serviceHint === PROXY_SERVICE ? undefined : state.hostedTunnel(target, serviceHint)
  // The apps' reserved names are never a proxy exit's to dial.
  const app = tunnel ? undefined : appOfTarget(target)
  const exit = tunnel || app ? undefined : state.hostedExit(target.host)
  const served = tunnel ?? exit
  if (!served) {
    if (app) {
      labels.sourceWorkload = sourceIdentity
      return refuse(404, 'CONNECT', `the ${app} app is off on this agent`, false, `the ${app} app is off on ${state.self.name}`)
    }

    return refuse(400, 'CONNECT', `${formatHostPort(target)} is not a target of any tunnel this agent hosts${state.snapshot.exit?.[state.self.name] ? ', nor of its proxy exit' : ''} (not an open relay)`)
  }

  const service = tunnel?.service ?? PROXY_SERVICE
  record.service = service
  labels.destinationService = service
  labels.sourceWorkload = sourceIdentity
  const decision = state.authorize({destinationPort: target.port, service, sourceAddress: peer.ip, sourceSpiffe: peer.spiffe}, served)
  if (!decision.allowed) {
    const message = `connection closed due to policy rejection: ${decision.reason}`
    if (!isAppService(service)) return refuse(401, 'DENY', message)
    // An app tells its (human) client which gate refused: 403 its allow list, 401 a policy.
    const who = `identity "${sourceIdentity}"`
    return decision.allowList
      ? refuse(403, 'DENY', message, false, `${who} is not allowed to use ${service} on ${state.self.name}`)
      : refuse(401, 'DENY', message, false, `a policy on ${state.self.name} denies ${who} ${service}`)
  }

  return {allowed: true, exit, labels, record, target}
}

/** A proxy exit resolved its target to ADDRESS: the refusal when an excluded CIDR holds it. */
export function checkResolved(admission: Admission & {allowed: true}, address: string): string | undefined {
  const excluded = admission.exit && excludedAddress(admission.exit, address)
  return excluded ? `${formatHostPort(admission.target)} resolves to ${address}, inside the excluded ${excluded} (not an open relay)` : undefined
}

/** `for="1.2.3.4:5";host="tcp/x"` → `tcp/x`. Bounded; garbage yields undefined. */
export function forwardedHost(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > MAX_FORWARDED_LENGTH) return undefined
  return /(?:^|;)\s*host="?([^";,]{1,256})"?/i.exec(value)?.[1]
}

/** The record's service for the metrics: none until the target was matched to a tunnel. */
export function refusalLabels(admission: Admission & {allowed: false}): TrafficLabels {
  const {labels, record} = admission
  return {...labels, destinationService: record.service === 'unknown' ? undefined : record.service}
}

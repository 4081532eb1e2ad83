// The inbound side of HBONE: an HTTP/2 server over mutual TLS. Any certificate of the mesh CA gets
// through the handshake; each CONNECT is then checked (method, :authority, revocation, identity,
// "is this a target I serve?", authorization) and answered 200 only once the upstream is connected.
import {createSecureServer, type Http2SecureServer, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream} from 'node:http2'
import {connect as netConnect, type AddressInfo, type Socket} from 'node:net'
import type {TLSSocket} from 'node:tls'

import {describeSystemError} from '../errors.js'
import {formatHostPort, type HostPort, normalizeIp, parseHostPort} from './address.js'
import {identityNameFromSpiffe, workloadFromSpiffe} from './authz.js'
import type {ConnectionTracker} from './connection.js'
import type {Logger} from './log.js'
import type {Metrics, ResponseFlag, TrafficLabels} from './metrics.js'
import type {ConnectionRecord} from './registry.js'
import {H2_MAX_SESSION_MEMORY_MB, H2_SETTINGS, keepalive, raiseConnectionWindow} from './relay.js'
import type {MeshState} from './state.js'
import {type Credentials, type PeerIdentity, peerIdentity} from './tls.js'

export interface HboneServerOptions {
  credentials: Credentials
  dialTimeoutMs?: number
  keepaliveIntervalMs?: number
  keepaliveTimeoutMs?: number
  logger: () => Logger
  metrics: Metrics
  /** the address other agents dial (reported as dst.addr) */
  advertise: () => string
  /** handle each stream yourself instead of the tunnel checks (in-pod: a workload's own 15008) */
  handleStream?: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, peer: PeerIdentity) => void
  state: () => MeshState
  tracker: ConnectionTracker
}

/** Streams one session may carry at once (ztunnel's server allows 200; our clients open ≤ 100). */
const MAX_CONCURRENT_STREAMS = 200
const MAX_FORWARDED_LENGTH = 1024

export class HboneServer {
  private readonly server: Http2SecureServer
  private readonly sessions = new Set<Http2Session>()
  private readonly peers = new WeakMap<Http2Session, SessionPeer>()
  private readonly options: Required<Omit<HboneServerOptions, 'handleStream'>> & Pick<HboneServerOptions, 'handleStream'>

  constructor(options: HboneServerOptions) {
    this.options = {dialTimeoutMs: 10_000, keepaliveIntervalMs: 10_000, keepaliveTimeoutMs: 20_000, ...options}
    const {credentials} = options
    this.server = createSecureServer({
      ...credentials.serverOptions(),
      allowHTTP1: false,
      maxSessionMemory: H2_MAX_SESSION_MEMORY_MB,
      settings: {...H2_SETTINGS, maxConcurrentStreams: MAX_CONCURRENT_STREAMS},
    })
    credentials.on('update', () => this.server.setSecureContext(credentials.serverOptions()))
    this.server.on('session', (session) => this.onSession(session))
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers))
    this.server.on('tlsClientError', (error, socket) => this.onTlsError(error, socket))
    // A client that did not negotiate h2 gets no HTTP/1 fallback: close at once.
    this.server.on('unknownProtocol', (socket: Socket) => socket.destroy())
  }

  async listen(address: HostPort): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(address.port, address.host, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    return this.server.address() as AddressInfo
  }

  /** Serve a TCP connection accepted elsewhere (a listener inside a pod's netns): TLS starts on it. */
  accept(socket: Socket): void {
    this.server.emit('connection', socket)
  }

  /** Stop accepting and send GOAWAY on every session; open streams continue. */
  drain(): void {
    this.server.close()
    for (const session of this.sessions) if (!session.closed) session.close()
  }

  destroy(): void {
    this.server.close()
    for (const session of this.sessions) session.destroy()
  }

  /** Abruptly end the sessions of peers whose certificate is now revoked. */
  closeSessionsWhere(predicate: (peer: PeerIdentity) => boolean): number {
    let count = 0
    for (const session of this.sessions) {
      const peer = this.peers.get(session)
      if (peer && predicate(peer)) {
        count++
        session.destroy()
      }
    }

    return count
  }

  get sessionCount(): number {
    return this.sessions.size
  }

  private onSession(session: Http2Session): void {
    this.sessions.add(session)
    const socket = session.socket as TLSSocket
    const ip = normalizeIp(socket.remoteAddress)
    this.peers.set(session, {...peerIdentity(socket), ip, source: `${ip}:${socket.remotePort}`})
    session.once('close', () => this.sessions.delete(session))
    session.on('error', (error) => this.options.logger().debug({error: error.message}, 'HBONE session error'))
    raiseConnectionWindow(session)
    keepalive(session as never, this.options.keepaliveIntervalMs, this.options.keepaliveTimeoutMs)
  }

  private onTlsError(error: Error, socket: TLSSocket): void {
    const source = `${normalizeIp(socket.remoteAddress)}:${socket.remotePort}`
    this.options.metrics.connectionFailed({reporter: 'destination', responseFlags: 'TLS_FAILURE'})
    this.options.logger().warn(
      {scope: 'access', 'src.addr': source, 'dst.addr': this.options.advertise(), direction: 'inbound', error: `TLS handshake failed: ${error.message}`},
      'connection failed',
    )
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', ignoreError) // the relay or the refusal path reports
    const session = stream.session
    if (!session) return
    const peer = this.peers.get(session) ?? UNKNOWN_PEER
    if (this.options.handleStream) {
      this.options.handleStream(stream, headers, peer)
      return
    }

    const state = this.options.state()
    const authority = headers[':authority']
    const target = parseHostPort(authority)
    const serviceHint = forwardedHost(headers.forwarded)
    const record: ConnectionRecord = {
      destinationAddress: this.options.advertise(),
      destinationAgent: state.self.name,
      destinationSpiffe: this.options.credentials.identity.spiffe,
      direction: 'inbound',
      hboneTarget: typeof authority === 'string' ? authority.slice(0, 300) : '',
      id: this.options.tracker.newId(),
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
    const refuse = (status: number, flag: ResponseFlag, message: string): void => this.refuse(stream, record, labels, status, flag, message)
    if (headers[':method'] !== 'CONNECT') return refuse(400, 'CONNECT', `expected method CONNECT, got ${String(headers[':method']).slice(0, 20)}`)
    if (!target) return refuse(400, 'CONNECT', `bad :authority ${JSON.stringify(record.hboneTarget)}: expected host:port`)
    if (state.isRevoked(peer.serial)) {
      refuse(401, 'CERT_REVOKED', `connection closed: peer certificate ${peer.serial} revoked`)
      session.close()
      return
    }

    // An identity, or a redirected pod (`ns/NS/sa/SA`) dialling a mesh service from its node agent.
    const workload = workloadFromSpiffe(peer.spiffe, state.self.trustDomain)
    const sourceIdentity = identityNameFromSpiffe(peer.spiffe, state.self.trustDomain) ?? (workload && `${workload.namespace}/${workload.serviceAccount}`)
    if (!sourceIdentity) return refuse(401, 'IDENTITY_ERROR', `the peer certificate carries no identity of trust domain ${state.self.trustDomain} (${peer.spiffe ?? 'no SPIFFE ID'})`)
    const tunnel = state.hostedTunnel(target, serviceHint)
    if (!tunnel) return refuse(400, 'CONNECT', `${formatHostPort(target)} is not a target of any tunnel this agent hosts (not an open relay)`)
    record.service = tunnel.service
    labels.destinationService = tunnel.service
    labels.sourceWorkload = sourceIdentity
    const decision = state.authorize({destinationPort: target.port, service: tunnel.service, sourceAddress: peer.ip, sourceSpiffe: peer.spiffe}, tunnel)
    if (!decision.allowed) return refuse(401, 'DENY', `connection closed due to policy rejection: ${decision.reason}`)
    this.dial(stream, target, record, labels)
  }

  private refuse(stream: ServerHttp2Stream, record: ConnectionRecord, labels: TrafficLabels, status: number, flag: ResponseFlag, message: string): void {
    if (!stream.closed && !stream.headersSent) stream.respond({':status': status}, {endStream: true})
    this.options.tracker.refused(record, {...labels, destinationService: record.service === 'unknown' ? undefined : record.service}, {flag, message})
  }

  private dial(stream: ServerHttp2Stream, target: HostPort, record: ConnectionRecord, labels: TrafficLabels): void {
    const upstream = netConnect({allowHalfOpen: true, host: target.host, noDelay: true, port: target.port})
    const timer = setTimeout(() => upstream.destroy(Object.assign(new Error('timed out'), {code: 'ETIMEDOUT'})), this.options.dialTimeoutMs)
    timer.unref()
    const onEarlyClose = (): void => {
      clearTimeout(timer)
      upstream.destroy()
    }

    const onDialError = (error: Error): void => {
      clearTimeout(timer)
      stream.off('close', onEarlyClose)
      if (!stream.closed) this.refuse(stream, record, labels, 503, 'CONNECT', `${describeSystemError(error)} dialling target ${formatHostPort(target)} of ${record.service}`)
    }

    stream.once('close', onEarlyClose)
    upstream.once('error', onDialError)
    upstream.once('connect', () => {
      clearTimeout(timer)
      stream.off('close', onEarlyClose)
      // From here on errors belong to the relay (a reset after hours of traffic is not a dial failure).
      upstream.off('error', onDialError)
      if (stream.closed || stream.destroyed) {
        upstream.destroy()
        return
      }

      // Only now: 200 means "the upstream is connected", as in ztunnel.
      stream.respond({':status': 200})
      this.options.tracker.established(record, labels, upstream, stream)
    })
  }
}

/** A session's peer: its certificate identity and address, worked out once per session, not per stream. */
interface SessionPeer extends PeerIdentity {
  ip: string
  /** `ip:port` */
  source: string
}

const UNKNOWN_PEER: SessionPeer = {ip: '', source: ''}

function ignoreError(): void {}

/** `for="1.2.3.4:5";host="tcp/x"` → `tcp/x`. Bounded; garbage yields undefined. */
export function forwardedHost(value: string | string[] | undefined): string | undefined {
  if (typeof value !== 'string' || value.length > MAX_FORWARDED_LENGTH) return undefined
  return /(?:^|;)\s*host="?([^";,]{1,256})"?/i.exec(value)?.[1]
}

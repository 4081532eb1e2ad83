// The inbound side of HBONE: an HTTP/2 server over mutual TLS. Any certificate of the mesh CA gets
// through the handshake; each CONNECT is then checked (method, :authority, revocation, identity,
// "is this a target I serve?", authorization) and answered 200 only once the upstream is connected.
// Sessions are bounded as every HTTP/2 server of ours is (http2/server-bounds.ts, HBONE_BOUNDS).
import {createSecureServer, type Http2SecureServer, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream} from 'node:http2'
import {connect as netConnect, type AddressInfo, type Socket} from 'node:net'
import type {TLSSocket} from 'node:tls'

import {describeSystemError} from '../../errors.js'
import {boundedServerOptions, guardHttp2Server, HBONE_BOUNDS, type Http2Guard} from '../../http2/server-bounds.js'
import {listening} from '../../util/listening.js'
import {formatHostPort, type HostPort, normalizeIp, resolveHost} from '../address.js'
import {admittedApp, type AppStreamHandler, logAppRefusal, serveNodeAppStream} from './app-streams.js'
import {type Admission, admitConnect, checkResolved, refusalLabels, type SessionPeer} from './hbone-admission.js'
import type {ConnectionTracker} from './connection.js'
import type {Logger} from '../observe/log.js'
import type {Metrics, TrafficLabels} from '../observe/metrics.js'
import type {ConnectionRecord} from '../observe/registry.js'
import {H2_SETTINGS, raiseConnectionWindow} from '../hbone/relay.js'
import type {MeshState} from '../state/state.js'
import {type Credentials, type PeerIdentity, peerIdentity} from '../hbone/tls.js'

export interface HboneServerOptions {
  credentials: Credentials
  dialTimeoutMs?: number
  keepaliveIntervalMs?: number
  keepaliveTimeoutMs?: number
  logger: () => Logger
  metrics: Metrics
  /** the address other agents dial (reported as dst.addr) */
  advertise: () => string
  /** the agent's app host (app streams, app-streams.ts), once an app is enabled */
  apps?: () => AppStreamHandler | undefined
  /** handle each stream yourself instead of the tunnel checks (in-pod: a workload's own 15008) */
  handleStream?: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, peer: PeerIdentity) => void
  state: () => MeshState
  tracker: ConnectionTracker
}

export class HboneServer {
  private readonly guard: Http2Guard
  private readonly server: Http2SecureServer
  private readonly sessions = new Set<Http2Session>()
  private readonly peers = new WeakMap<Http2Session, SessionPeer>()
  private readonly options: Required<Omit<HboneServerOptions, 'apps' | 'handleStream'>> & Pick<HboneServerOptions, 'apps' | 'handleStream'>

  constructor(options: HboneServerOptions) {
    this.options = {dialTimeoutMs: 10_000, keepaliveIntervalMs: 10_000, keepaliveTimeoutMs: 20_000, ...options}
    const {credentials} = options
    // The keepalive: a session silent for an interval gets a PING; unanswered in time, it is destroyed.
    const bounds = {...HBONE_BOUNDS, pingTimeoutMs: this.options.keepaliveTimeoutMs, silenceMs: this.options.keepaliveIntervalMs}
    const bounded = boundedServerOptions(bounds)
    this.server = createSecureServer({
      ...bounded,
      ...credentials.serverOptions(),
      allowHTTP1: false,
      settings: {...bounded.settings, ...H2_SETTINGS},
    })
    this.guard = guardHttp2Server(this.server, bounds, {
      ended: (reason, remote) => this.options.logger().debug({reason, 'src.addr': remote}, 'HBONE session closed by the server\'s bounds'),
    })
    credentials.on('update', () => this.server.setSecureContext(credentials.serverOptions()))
    this.server.on('session', (session) => this.onSession(session))
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers))
    this.server.on('tlsClientError', (error, socket) => this.onTlsError(error, socket))
    // A client that did not negotiate h2 gets no HTTP/1 fallback: close at once.
    this.server.on('unknownProtocol', (socket: Socket) => socket.destroy())
  }

  async listen(address: HostPort): Promise<AddressInfo> {
    await listening(this.server, (done) => this.server.listen(address.port, address.host, done))
    return this.server.address() as AddressInfo
  }

  /** Serve a TCP connection accepted elsewhere (a listener inside a pod's netns): TLS starts on it. */
  accept(socket: Socket): void {
    this.server.emit('connection', socket)
  }

  /** Stop accepting and send GOAWAY on every session; open streams continue. */
  drain(): void {
    this.guard.close()
    this.server.close()
    for (const session of this.sessions) if (!session.closed) session.close()
  }

  destroy(): void {
    this.guard.close()
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

    // A CONNECT the peer reset in the same read (rapid reset) is closed by the next turn: it costs no
    // admission, no log line and no dial to the target.
    setImmediate(() => {
      if (!stream.closed && !stream.destroyed) this.admit(stream, headers, peer)
    })
  }

  private admit(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, peer: SessionPeer): void {
    const admission = admitConnect(
      {authority: headers[':authority'], forwarded: headers.forwarded, method: headers[':method']},
      peer,
      {advertise: this.options.advertise(), id: this.options.tracker.newId(), selfSpiffe: this.options.credentials.identity.spiffe, state: this.options.state()},
    )
    if (admission.allowed && admission.record.service.startsWith('udp/')) {
      this.refuse(stream, {...admission, allowed: false, flag: 'CONNECT', message: `${admission.record.service} needs the native data path on the hosting agent (--data-path native)`, status: 503})
      return
    }

    if (admission.allowed && admission.exit) {
      void this.dialExit(stream, admission)
      return
    }

    if (admission.allowed) {
      const app = admittedApp(admission)
      if (!app) this.dial(stream, admission.target, admission.record, admission.labels)
      else if (!serveNodeAppStream(stream, admission, app, this.options)) this.refuse(stream, {...admission, allowed: false, flag: 'CONNECT', message: `the ${app} app host is not running`, status: 503})
      return
    }

    this.refuse(stream, admission)
    if (admission.closeSession) stream.session?.close()
  }

  private refuse(stream: ServerHttp2Stream, refusal: Admission & {allowed: false}): void {
    // An app's refusal carries words for its (human) client; any other, the message itself.
    if (!stream.closed && !stream.headersSent) stream.respond({':status': refusal.status, 'ztctl-reason': reasonHeader(refusal.clientReason ?? refusal.message)}, {endStream: true})
    this.options.tracker.refused(refusal.record, refusalLabels(refusal), refusal)
    logAppRefusal(this.options.logger(), refusal)
  }

  /** A proxy exit: the name is resolved here, and the address must not be in an excluded CIDR. */
  private async dialExit(stream: ServerHttp2Stream, admission: Admission & {allowed: true}): Promise<void> {
    const {labels, record, target} = admission
    const refuse = (status: number, message: string): void => {
      if (!stream.closed) this.refuse(stream, {allowed: false, flag: 'CONNECT', labels, message, record, status})
    }

    let ip: string
    try {
      ip = await resolveHost(target.host)
    } catch (error) {
      refuse(503, `cannot resolve ${target.host}: ${describeSystemError(error)}`)
      return
    }

    const excluded = checkResolved(admission, ip)
    if (excluded) refuse(400, excluded)
    else this.dial(stream, {host: ip, port: target.port}, record, labels)
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
      if (!stream.closed) this.refuse(stream, {allowed: false, flag: 'CONNECT', labels, message: `${describeSystemError(error)} dialling target ${formatHostPort(target)} of ${record.service}`, record, status: 503})
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

const UNKNOWN_PEER: SessionPeer = {ip: '', source: ''}

/** A refusal's words as a header value: printable, bounded (as the native path sends them). */
function reasonHeader(message: string): string {
  return message.replaceAll(/[^\x20-\x7e]/g, ' ').slice(0, 190)
}

function ignoreError(): void {}

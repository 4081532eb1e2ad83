// The inbound side of HBONE on the native data path: the addon runs the mutual-TLS listener and the
// HTTP/2 sessions; each CONNECT comes here as an event and goes through the same admission as the
// node:http2 server (hbone-admission.ts). An admitted one is dialled by the addon, which answers 200
// only once the upstream is connected (503 if it cannot be), then relays the bytes itself. Sessions that
// come through a hub (an inner HBONE session over a standby stream) land on a virtual listener and are
// served exactly the same way; their source address is the one the hub saw.
import {Socket} from 'node:net'

import {describeSystemError} from '../../errors.js'
import {HBONE_BOUNDS} from '../../http2/server-bounds.js'
import {formatHostPort, type HostPort, resolveHost} from '../address.js'
import type {ConnectionTracker} from './connection.js'
import {admittedApp, type AppStreamHandler, logAppRefusal, serveNativeAppStream} from './app-streams.js'
import {type Admission, admitConnect, checkResolved, refusalLabels, type SessionPeer} from './hbone-admission.js'
import type {HboneEngine, HboneListenerHandler, ServerSessionHandler} from '../hbone/hbone-engine.js'
import type {Logger} from '../observe/log.js'
import type {Metrics} from '../observe/metrics.js'
import type {MeshState} from '../state/state.js'
import type {NativeContexts} from '../hbone/native-tls.js'
import {serveUdpExit} from './tunnel-udp.js'

export interface NativeServerOptions {
  advertise: () => string
  /** the agent's app host (app streams, app-streams.ts), once an app is enabled */
  apps?: () => AppStreamHandler | undefined
  contexts: NativeContexts
  dialTimeoutMs?: number
  engine: HboneEngine
  /** handle each CONNECT yourself instead of the tunnel admission (in-pod: a workload's own 15008) */
  handleRequest?: (tunnelId: number, request: NativeRequest, peer: SessionPeer) => void
  keepaliveIntervalMs?: number
  keepaliveTimeoutMs?: number
  logger: () => Logger
  metrics: Metrics
  selfSpiffe: () => string
  state: () => MeshState
  tracker: ConnectionTracker
}

/** A CONNECT as the addon reports it. */
export interface NativeRequest {
  authority: string
  forwarded?: string
  method: string
}

export class NativeHboneServer {
  private listenerId: number | undefined
  private virtualId: number | undefined
  private readonly sessions = new Map<number, SessionPeer>()
  private readonly options: Required<Omit<NativeServerOptions, 'apps' | 'handleRequest'>> & Pick<NativeServerOptions, 'apps' | 'handleRequest'>
  private draining = false

  constructor(options: NativeServerOptions) {
    this.options = {dialTimeoutMs: 10_000, keepaliveIntervalMs: 10_000, keepaliveTimeoutMs: 20_000, ...options}
    options.contexts.on('update', this.onRenewed)
  }

  /** New handshakes use the renewed certificate. */
  private readonly onRenewed = (): void => {
    for (const id of [this.listenerId, this.virtualId]) if (id !== undefined) this.options.engine.native.listenerSetContext(id, this.options.contexts.server)
  }

  /** The listener inner sessions over hub streams belong to (hub-links.ts opens them), made on first use. */
  virtualListener(): number {
    const {contexts, engine, keepaliveIntervalMs, keepaliveTimeoutMs} = this.options
    this.virtualId ??= engine.listenVirtual(contexts.server, {intervalMs: keepaliveIntervalMs, timeoutMs: keepaliveTimeoutMs}, HBONE_BOUNDS, this.listenerHandler())
    return this.virtualId
  }

  /** FD: a listening socket to adopt (a pod's 15008, made in its namespace) instead of binding ADDRESS. */
  async listen(address: HostPort, fd?: number): Promise<{address: string; port: number}> {
    const {engine, keepaliveIntervalMs, keepaliveTimeoutMs} = this.options
    const host = await resolveHost(address.host)
    const {id, port} = engine.listenHbone(host, address.port, this.options.contexts.server, {intervalMs: keepaliveIntervalMs, timeoutMs: keepaliveTimeoutMs}, HBONE_BOUNDS, this.listenerHandler(), fd)
    this.listenerId = id
    return {address: host, port}
  }

  private listenerHandler(): HboneListenerHandler {
    return {
      sessionReady: (sessionId, certificate, remote) => this.onSession(sessionId, certificate, remote),
      tlsError: (remote, message) => this.onTlsError(remote || 'a hub stream', message),
    }
  }

  /** Stop accepting and send GOAWAY on every session; open streams continue. */
  drain(): void {
    this.draining = true
    this.closeListener()
    for (const id of this.sessions.keys()) this.options.engine.native.sessionClose(id, true)
  }

  destroy(): void {
    this.options.contexts.off('update', this.onRenewed)
    this.closeListener()
    if (this.virtualId !== undefined) this.options.engine.closeListener(this.virtualId)
    this.virtualId = undefined
    for (const id of this.sessions.keys()) this.options.engine.native.sessionClose(id, false)
  }

  /** Abruptly end the sessions of peers whose certificate is now revoked. */
  closeSessionsWhere(predicate: (peer: SessionPeer) => boolean): number {
    let count = 0
    for (const [id, peer] of this.sessions) {
      if (predicate(peer)) {
        count++
        this.options.engine.native.sessionClose(id, false)
      }
    }

    return count
  }

  get sessionCount(): number {
    return this.sessions.size
  }

  private closeListener(): void {
    if (this.listenerId === undefined) return
    this.options.engine.closeListener(this.listenerId)
    this.listenerId = undefined
  }

  private onSession(sessionId: number, certificate: {serial?: string; spiffe?: string}, remote: string): ServerSessionHandler {
    const ip = remote.startsWith('[') ? remote.slice(1, remote.lastIndexOf(']')) : remote.slice(0, remote.lastIndexOf(':'))
    const peer: SessionPeer = {ip, serial: certificate.serial, source: remote, spiffe: certificate.spiffe}
    this.sessions.set(sessionId, peer)
    if (this.draining) this.options.engine.native.sessionClose(sessionId, true)
    return {
      closed: () => this.sessions.delete(sessionId),
      request: (tunnelId, method, authority, forwarded) => {
        const request = {authority, forwarded, method}
        if (this.options.handleRequest) this.options.handleRequest(tunnelId, request, peer)
        else this.onRequest(sessionId, peer, tunnelId, request)
      },
    }
  }

  private onTlsError(remote: string, message: string): void {
    this.options.metrics.connectionFailed({reporter: 'destination', responseFlags: 'TLS_FAILURE'})
    this.options.logger().warn(
      {scope: 'access', 'src.addr': remote, 'dst.addr': this.options.advertise(), direction: 'inbound', error: `TLS handshake failed: ${message}`},
      'connection failed',
    )
  }

  private onRequest(sessionId: number, peer: SessionPeer, tunnelId: number, request: NativeRequest): void {
    const {engine, tracker} = this.options
    const admission = admitConnect(request, peer, {
      advertise: this.options.advertise(),
      id: tracker.newId(),
      selfSpiffe: this.options.selfSpiffe(),
      state: this.options.state(),
    })
    if (!admission.allowed) {
      // An app's refusal carries words for its (human) client; any other, the message itself.
      engine.native.refuse(tunnelId, admission.status, admission.clientReason ?? admission.message)
      tracker.refused(admission.record, refusalLabels(admission), admission)
      logAppRefusal(this.options.logger(), admission)
      if (admission.closeSession) engine.native.sessionClose(sessionId, true)
      return
    }

    const app = admittedApp(admission)
    if (app) {
      if (!serveNativeAppStream(engine, tunnelId, admission, app, this.options)) {
        engine.native.refuse(tunnelId, 503)
        tracker.refused(admission.record, admission.labels, {flag: 'CONNECT', message: `the ${app} app host is not running`})
      }
    } else if (admission.record.service.startsWith('udp/')) {
      void this.serveUdp(tunnelId, admission)
    } else {
      void this.dial(tunnelId, admission)
    }
  }

  /** A `udp/` tunnel's stream: 200 over a socketpair, datagrams to one connected UDP socket (tunnel-udp.ts). */
  private async serveUdp(tunnelId: number, admission: Admission & {allowed: true}): Promise<void> {
    const {engine, logger, tracker} = this.options
    const {labels, record, target} = admission
    let ip: string
    try {
      ip = await resolveHost(target.host)
    } catch (error) {
      engine.native.refuse(tunnelId, 503, `cannot resolve ${target.host}: ${describeSystemError(error)}`)
      tracker.refused(record, labels, {flag: 'CONNECT', message: `${describeSystemError(error)} resolving ${target.host}`})
      return
    }

    const fd = engine.native.acceptPair(tunnelId)
    if (fd < 0) return // the client went away meanwhile
    const stop = serveUdpExit(new Socket({allowHalfOpen: true, fd, readable: true, writable: true}), {host: ip, port: target.port}, logger)
    const finish = tracker.opened(record, labels, () => {
      stop()
      engine.native.abort(tunnelId, 'closed by the agent')
    })
    engine.watchTunnel(tunnelId, {
      closed(fromPlain, toPlain, error) {
        stop()
        finish({fromPlain, toPlain}, error)
      },
    })
  }

  private async dial(tunnelId: number, admission: Admission & {allowed: true}): Promise<void> {
    const {engine, tracker} = this.options
    const {labels, record, target} = admission
    const refuseDial = (why: string): void => {
      tracker.refused(record, labels, {flag: 'CONNECT', message: `${why} dialling target ${formatHostPort(target)} of ${record.service}`})
    }

    let ip: string
    try {
      ip = await resolveHost(target.host)
    } catch (error) {
      engine.native.refuse(tunnelId, 503, `cannot resolve ${target.host}: ${describeSystemError(error)}`)
      refuseDial(describeSystemError(error))
      return
    }

    const excluded = checkResolved(admission, ip)
    if (excluded) {
      engine.native.refuse(tunnelId, 400, excluded)
      tracker.refused(record, labels, {flag: 'CONNECT', message: excluded})
      return
    }

    dialAndRelay({engine, refuseDial, tracker}, tunnelId, {host: ip, port: target.port}, {labels, record}, this.options.dialTimeoutMs)
  }
}

/**
 * Let the addon dial TARGET (an IP) for the CONNECT TUNNEL_ID, from FD when given (a pod's socket), and
 * answer 200 once connected (503 if not, then REFUSE_DIAL hears why); from there the addon relays and the
 * tracker accounts.
 */
export function dialAndRelay(
  context: {engine: HboneEngine; refuseDial: (why: string) => void; tracker: ConnectionTracker},
  tunnelId: number, target: HostPort, accounting: Pick<Admission & {allowed: true}, 'labels' | 'record'>, timeoutMs: number, fd?: number,
): void {
  const {engine, refuseDial, tracker} = context
  engine.watchTunnel(tunnelId, {
    dialResult: (code, message) => {
      if (code === '') {
        const finish = tracker.opened(accounting.record, accounting.labels, () => engine.native.abort(tunnelId, 'closed by the agent'))
        engine.watchTunnel(tunnelId, {closed: (fromPlain, toPlain, error) => finish({fromPlain, toPlain}, error)})
        return
      }

      engine.forgetTunnel(tunnelId)
      if (code !== 'ECANCELED') refuseDial(describeSystemError(Object.assign(new Error(`${code}: ${message ?? 'failed'}`), {code})))
    },
  })
  if (!engine.native.accept(tunnelId, target.host, target.port, timeoutMs, fd)) engine.forgetTunnel(tunnelId) // the client went away meanwhile
}

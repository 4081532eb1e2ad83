// The native HBONE data path (src/lib/proxy/hbone/native/hbone.c): TLS + HTTP/2 CONNECT framing and the byte
// relay in C on Node's own event loop, with every decision left here. The addon reports events by id;
// this module routes each to whoever owns that id (a listener, a session, a tunnel). One engine per
// process: several agents in one process (tests) share it, each owning its own ids.
import {existsSync} from 'node:fs'
import {createRequire} from 'node:module'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {ZtError} from '../../errors.js'
import type {Http2ServerBounds} from '../../http2/server-bounds.js'

/** Event codes, as hbone.c numbers them. */
const enum EventType {
  Accept = 1,
  SessionReady,
  SessionFailed,
  SessionClosed,
  Response,
  Request,
  DialResult,
  Closed,
  TlsError,
  Goaway,
  Data,
}

interface HboneBinding {
  init(onEvent: (type: EventType, id: number, n1: number, n2: number, s1?: string, s2?: string, s3?: string, s4?: string, data?: Buffer) => void): void
  contextCreate(certPem: string, keyPem: string, caPem: string, server: boolean): number
  contextFree(id: number): boolean
  /** FD: an already listening socket to adopt (a pod's, made in its namespace) instead of binding HOST:PORT */
  listen(host: string, port: number, contextId: number, keepaliveMs: number, keepaliveTimeoutMs: number, limits: NativeListenerLimits | undefined, fd?: number): [number, number]
  listenerSetContext(id: number, contextId: number): boolean
  listenerClose(id: number): boolean
  /** FD: an unconnected socket to dial from (made in a pod's namespace, with its mark) */
  connect(contextId: number, host: string, port: number, timeoutMs: number, keepaliveMs: number, keepaliveTimeoutMs: number, fd?: number): number
  sessionClose(id: number, graceful: boolean): boolean
  /** PREFIX goes on the stream before the socket is read, REPLY to the socket when 200 arrives */
  open(tunnelId: number, sessionId: number, authority: string, headers: string[], prefix?: Buffer, reply?: Buffer): boolean
  /** FD: an unconnected socket to dial the target from (a pod's); the engine owns it either way */
  accept(tunnelId: number, ip: string, port: number, timeoutMs: number, fd?: number): boolean
  /** REASON (words) travels as the ztctl-reason header */
  refuse(tunnelId: number, status: number, reason?: string): boolean
  abort(tunnelId: number, message: string): boolean
  cancel(tunnelId: number): boolean
  /** hand the plain socket's first MAX bytes to JS (Data events) */
  peek(tunnelId: number, maxBytes: number): boolean
  /** a reply to a waiting plain socket (≤ 64 KiB queued) */
  write(tunnelId: number, data: Buffer): boolean
  /** a last reply, FIN, close: no Closed event follows */
  finish(tunnelId: number, data?: Buffer): boolean
  /** a waiting client tunnel over a socketpair: [tunnelId, the fd JS keeps] */
  pair(): [number, number]
  /** answer an unanswered CONNECT 200 over a socketpair: the fd JS keeps, -1 when the request is gone */
  acceptPair(tunnelId: number): number
  /** answer two unanswered CONNECTs 200 and join their streams (a hub) */
  splice(a: number, b: number, headersA: string[], headersB: string[]): boolean
  /** a CONNECT whose stream carries a TLS + HTTP/2 session: [carrier tunnel, inner session], false when the session takes no stream */
  carrier(sessionId: number, authority: string, headers: string[], server: boolean, contextOrListener: number, keepaliveMs: number, keepaliveTimeoutMs: number, timeoutMs: number): [number, number] | false
  /** an HBONE listener without a socket: its sessions come over carriers */
  listenVirtual(contextId: number, keepaliveMs: number, keepaliveTimeoutMs: number, limits?: NativeListenerLimits): number
  /** [round trip µs (-1: none yet), open streams], null once gone */
  sessionInfo(sessionId: number): [number, number] | null
  /** an accepted plain socket's fd while JS has not opened, peeked or answered it (-1: not such a tunnel) */
  plainFd(tunnelId: number): number
  /** JS takes an accepted plain socket back (its fd; -1: not such a tunnel): the tunnel is gone, no event follows */
  detach(tunnelId: number): number
  /**
   * join an accepted plain socket JS left untouched to IP:PORT, dialled from FD when given (a pod's; the engine
   * owns it either way): the relay's id, -1 when TUNNEL_ID is not such a socket (the tunnel is gone, no event)
   */
  relay(tunnelId: number, ip: string, port: number, timeoutMs: number, fd?: number): number
  /** reset both ends of a relay (EV_CLOSED with MESSAGE; while dialling, EV_DIAL_RESULT ECANCELED) */
  relayAbort(relayId: number, message: string): boolean
  stats(): [number, number, number]
}

/** What the addon bounds per HBONE session (the subset of Http2ServerBounds it enforces itself). */
export type NativeListenerLimits = Pick<Http2ServerBounds, 'handshakeTimeoutMs' | 'idleSessionMs' | 'maxConcurrentStreams' | 'maxHeaderListBytes' | 'maxHeaderPairs' | 'resetBurst' | 'resetRatePerSecond'>

export interface PeerCertificateInfo {
  serial?: string
  spiffe?: string
}

/** A plain listener's new connection (an inbound tunnel's client). */
export type AcceptHandler = (tunnelId: number, remote: string) => void

/** What an HBONE listener hears about its sessions. */
export interface HboneListenerHandler {
  /** a peer completed the mutual-TLS handshake; return its session's handler */
  sessionReady(sessionId: number, peer: PeerCertificateInfo, remote: string): ServerSessionHandler
  tlsError(remote: string, message: string): void
}

export interface ServerSessionHandler {
  closed(reason: string): void
  /** HUB: the request's ztctl-hub header (`accept` / `relay` on a hub's listener) */
  request(tunnelId: number, method: string, authority: string, forwarded: string | undefined, hub: string | undefined): void
}

export interface ClientSessionHandler {
  closed(reason: string): void
  failed(reason: string): void
  goaway(): void
  ready(peer: PeerCertificateInfo): void
}

export interface TunnelHandler {
  /** an established tunnel ended: bytes read from / written to the plain side, and why when it failed */
  closed?(fromPlain: number, toPlain: number, error: string | undefined): void
  /** server: the target was dialled ('' = connected, else an errno name) */
  dialResult?(code: string, message: string | undefined): void
  /**
   * client: the CONNECT's answer (0 = the stream or session failed first, with why; else REASON is the
   * ztctl-reason header of a refusal), FORWARDED the 200's forwarded header
   */
  response?(status: number, reason: string | undefined, forwarded: string | undefined): void
  /** a plain socket in peek mode brought bytes (COUNT of them; -1: the client closed, -2: an error) */
  data?(count: number, bytes: Buffer | undefined): void
}

// src/lib/proxy and dist/lib/proxy sit at the same depth below the repository root.
const ADDON_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../build/Release/ztctl_hbone.node')

export class HboneEngine {
  private static instance: HboneEngine | undefined
  private readonly accepting = new Map<number, AcceptHandler>()
  private readonly hboneListeners = new Map<number, HboneListenerHandler>()
  private readonly clientSessions = new Map<number, ClientSessionHandler>()
  private readonly serverSessions = new Map<number, ServerSessionHandler>()
  private readonly tunnels = new Map<number, TunnelHandler>()

  private constructor(readonly native: HboneBinding) {
    native.init((type, id, n1, n2, s1, s2, s3, s4, data) => this.route(type, id, n1, n2, [s1, s2, s3, s4], data))
  }

  /** The process's engine; a ZtError when the addon is not built or does not load. */
  static get(): HboneEngine {
    if (HboneEngine.instance) return HboneEngine.instance
    if (!existsSync(ADDON_PATH)) {
      throw new ZtError('ZT_ERR_NATIVE_MISSING', `the native HBONE data path is not built (${ADDON_PATH} does not exist)`, {
        suggestion: 'Run `npm run build` (needs a C compiler and libnghttp2-dev), or start the agent with --data-path node.',
      })
    }

    try {
      HboneEngine.instance = new HboneEngine(createRequire(import.meta.url)(ADDON_PATH) as HboneBinding)
    } catch (error) {
      throw new ZtError('ZT_ERR_NATIVE_MISSING', `the native HBONE data path at ${ADDON_PATH} cannot be loaded: ${(error as Error).message}`, {
        cause: error,
        suggestion: 'Rebuild it with `npm run build`, or start the agent with --data-path node.',
      })
    }

    return HboneEngine.instance
  }

  /** FD: a listening socket to adopt instead of binding HOST:PORT. */
  listenPlain(host: string, port: number, onAccept: AcceptHandler, fd?: number): {id: number; port: number} {
    const [id, bound] = this.native.listen(host, port, -1, 0, 0, undefined, fd)
    this.accepting.set(id, onAccept)
    return {id, port: bound}
  }

  listenHbone(host: string, port: number, contextId: number, keepalive: {intervalMs: number; timeoutMs: number}, limits: NativeListenerLimits, handler: HboneListenerHandler, fd?: number): {id: number; port: number} {
    const [id, bound] = this.native.listen(host, port, contextId, keepalive.intervalMs, keepalive.timeoutMs, limits, fd)
    this.hboneListeners.set(id, handler)
    return {id, port: bound}
  }

  closeListener(id: number): void {
    this.accepting.delete(id)
    this.hboneListeners.delete(id)
    this.native.listenerClose(id)
  }

  /** FD: an unconnected socket to dial from instead of a new one. */
  connect(contextId: number, host: string, port: number, timing: {connectTimeoutMs: number; keepaliveIntervalMs: number; keepaliveTimeoutMs: number}, handler: ClientSessionHandler, fd?: number): number {
    const id = this.native.connect(contextId, host, port, timing.connectTimeoutMs, timing.keepaliveIntervalMs, timing.keepaliveTimeoutMs, fd)
    this.clientSessions.set(id, handler)
    return id
  }

  /**
   * A CONNECT on SESSION whose stream carries a new TLS + HTTP/2 session (client: pinned by HANDLER.ready;
   * server: a session of the virtual LISTENER). Returns [carrier, inner] or undefined when SESSION takes
   * no stream; the carrier's answer and end go to CARRIER.
   */
  carrier(sessionId: number, authority: string, headers: string[], role: {client: ClientSessionHandler; contextId: number; keepaliveIntervalMs: number; keepaliveTimeoutMs: number; timeoutMs: number} | {listenerId: number}, carrier: TunnelHandler): {carrierId: number; innerId: number} | undefined {
    const ids = 'listenerId' in role
      ? this.native.carrier(sessionId, authority, headers, true, role.listenerId, 0, 0, 0)
      : this.native.carrier(sessionId, authority, headers, false, role.contextId, role.keepaliveIntervalMs, role.keepaliveTimeoutMs, role.timeoutMs)
    if (!ids) return undefined
    const [carrierId, innerId] = ids
    this.tunnels.set(carrierId, carrier)
    if (!('listenerId' in role)) this.clientSessions.set(innerId, role.client)
    return {carrierId, innerId}
  }

  /** An HBONE listener without a socket (sessions over hub streams), with LIMITS and HANDLER like listenHbone's. */
  listenVirtual(contextId: number, keepalive: {intervalMs: number; timeoutMs: number}, limits: NativeListenerLimits, handler: HboneListenerHandler): number {
    const id = this.native.listenVirtual(contextId, keepalive.intervalMs, keepalive.timeoutMs, limits)
    this.hboneListeners.set(id, handler)
    return id
  }

  /** A session's measured round trip (ms, undefined until the first PING came back) and open streams. */
  sessionInfo(sessionId: number): {rttMs?: number; streams: number} | undefined {
    const info = this.native.sessionInfo(sessionId)
    if (!info) return undefined
    return {rttMs: info[0] < 0 ? undefined : info[0] / 1000, streams: info[1]}
  }

  watchTunnel(id: number, handler: TunnelHandler): void {
    this.tunnels.set(id, handler)
  }

  forgetTunnel(id: number): void {
    this.tunnels.delete(id)
  }

  /**
   * The accepted plain connection TUNNEL_ID joined to TARGET (an IP), dialled from FD when given, the bytes
   * moved in C both ways: HANDLER hears dialResult, then (connected) closed. Undefined when TUNNEL_ID is
   * not an accepted connection JS left untouched.
   */
  relay(tunnelId: number, target: {host: string; port: number}, timeoutMs: number, handler: TunnelHandler, fd?: number): number | undefined {
    const id = this.native.relay(tunnelId, target.host, target.port, timeoutMs, fd)
    if (id < 0) return undefined
    this.tunnels.set(id, handler)
    return id
  }

  /** Sessions, tunnels and relays alive in the addon (tests check nothing leaks). */
  stats(): {relays: number; sessions: number; tunnels: number} {
    const [sessions, tunnels, relays] = this.native.stats()
    return {relays, sessions, tunnels}
  }

  /** Each event to the owner of its id: a listener (N1 for accepts, server sessions and requests), a session, a tunnel. */
  private route(type: EventType, id: number, n1: number, n2: number, [s1, s2, s3, s4]: (string | undefined)[], data: Buffer | undefined): void {
    switch (type) {
      case EventType.Accept: return this.accepted(id, n1, s1 ?? '')
      case EventType.SessionReady: return this.sessionReady(id, n1, {serial: s2, spiffe: s1}, s3 ?? '')
      case EventType.SessionFailed: return this.sessionFailed(id, s1 ?? 'failed')
      case EventType.SessionClosed: return this.sessionClosed(id, s1 ?? 'closed')
      case EventType.Goaway: return this.clientSessions.get(id)?.goaway()
      case EventType.Request: return this.requested(id, n1, s1 ?? '', s2 ?? '', s3, s4)
      case EventType.Response: return this.tunnels.get(id)?.response?.(n1, s1, s2)
      case EventType.Data: return this.dataArrived(id, n1, data)
      case EventType.DialResult: return this.tunnels.get(id)?.dialResult?.(s1 ?? '', s2)
      case EventType.Closed: return this.tunnelClosed(id, n1, n2, s1)
      case EventType.TlsError: return this.hboneListeners.get(id)?.tlsError(s1 ?? '', s2 ?? 'TLS handshake failed')
    }
  }

  /** A plain listener's new connection; one whose listener closed meanwhile is aborted. */
  private accepted(tunnelId: number, listenerId: number, remote: string): void {
    const onAccept = this.accepting.get(listenerId)
    if (onAccept) onAccept(tunnelId, remote)
    else this.native.abort(tunnelId, 'listener closed')
  }

  /** LISTENERID >= 0: a server session of that listener (closed when the listener is gone); else a client session. */
  private sessionReady(sessionId: number, listenerId: number, peer: PeerCertificateInfo, remote: string): void {
    if (listenerId < 0) {
      this.clientSessions.get(sessionId)?.ready(peer)
      return
    }

    const listener = this.hboneListeners.get(listenerId)
    if (listener) this.serverSessions.set(sessionId, listener.sessionReady(sessionId, peer, remote))
    else this.native.sessionClose(sessionId, false)
  }

  private sessionFailed(sessionId: number, reason: string): void {
    this.clientSessions.get(sessionId)?.failed(reason)
    this.clientSessions.delete(sessionId)
  }

  private sessionClosed(sessionId: number, reason: string): void {
    this.clientSessions.get(sessionId)?.closed(reason)
    this.clientSessions.delete(sessionId)
    this.serverSessions.get(sessionId)?.closed(reason)
    this.serverSessions.delete(sessionId)
  }

  /** A CONNECT on a server session; one whose session is gone is refused. */
  private requested(tunnelId: number, sessionId: number, method: string, authority: string, forwarded: string | undefined, hub: string | undefined): void {
    const session = this.serverSessions.get(sessionId)
    if (session) session.request(tunnelId, method, authority, forwarded, hub)
    else this.native.refuse(tunnelId, 503)
  }

  /** Bytes of a peeked plain socket (COUNT < 0: it closed or failed); nobody reading aborts it. */
  private dataArrived(tunnelId: number, count: number, data: Buffer | undefined): void {
    const handler = this.tunnels.get(tunnelId)?.data
    if (handler) handler(count, data)
    else if (count >= 0) this.native.abort(tunnelId, 'nobody reads this connection')
  }

  private tunnelClosed(tunnelId: number, fromPlain: number, toPlain: number, error: string | undefined): void {
    const handler = this.tunnels.get(tunnelId)
    this.tunnels.delete(tunnelId)
    handler?.closed?.(fromPlain, toPlain, error)
  }
}

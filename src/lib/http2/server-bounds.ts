// The one place that bounds what a peer can make an HTTP/2 server of ours hold: the controller's API
// port and the agents' HBONE port, on both data paths (node:http2 here; the native engine takes the same
// numbers as arguments, src/lib/proxy/native/hbone.c). Three kinds of bounds:
// - limits nghttp2 enforces per session (streams, header list, settings, pings, session memory);
// - rapid reset (CVE-2023-44487): peer RST_STREAMs draw from a token bucket; an empty bucket ends the session;
// - dead and idle sessions. node:http2 never closes a session on a connection error it detected itself:
//   nghttp2 sends GOAWAY, Node stops reading the socket and raises no event, so the peer's FIN is never read
//   and the socket sits in CLOSE-WAIT for ever (measured: 8 of 10 kinds of malformed frame). A session
//   that stays silent gets a PING; no answer in time destroys it. Idle sessions are capped: the oldest
//   idle one gives way to a new one.
import type {Http2SecureServer, Http2Session, SecureServerOptions, ServerHttp2Stream} from 'node:http2'
import type {Socket} from 'node:net'

export interface Http2ServerBounds {
  /** SETTINGS_MAX_CONCURRENT_STREAMS we advertise (and enforce: extra streams are refused) */
  maxConcurrentStreams: number
  /** SETTINGS_MAX_HEADER_LIST_SIZE: a request's header block, decoded, in bytes */
  maxHeaderListBytes: number
  /** header fields per request */
  maxHeaderPairs: number
  /** nghttp2's buffered-output budget per session, MB */
  maxSessionMemoryMb: number
  /** TLS handshake deadline */
  handshakeTimeoutMs: number
  /** a session silent this long (no frame either way) is probed with a PING */
  silenceMs: number
  /**
   * ... this long before its first stream, with twice this to answer: clients open a stream right after
   * connecting, so a fresh session that goes silent is one that connected for nothing, or that a malformed
   * frame already ended
   */
  firstStreamSilenceMs: number
  /** ... and destroyed when the PING is not answered in this time (dead peer, or a session nghttp2 ended) */
  pingTimeoutMs: number
  /** a session with no open stream for this long is closed */
  idleSessionMs: number
  /** sessions with no open stream kept at once; beyond it the one idle longest is closed */
  maxIdleSessions: number
  /**
   * The session rules for a peer that presented a certificate of our CA, counted apart (anonymous peers
   * cannot evict them): every agent of a cluster holds a config stream and comes back at once after a
   * controller restart, each session idle from its handshake until its first stream is read, and a peer
   * under load answers a PING late; a dead one is still found, just later.
   */
  authenticated: Readonly<Pick<Http2ServerBounds, 'firstStreamSilenceMs' | 'maxIdleSessions' | 'pingTimeoutMs' | 'silenceMs'>>
  /** peer stream resets (before we finished answering): bucket size ... */
  resetBurst: number
  /** ... refilled at this many per second; an empty bucket destroys the session */
  resetRatePerSecond: number
}

/** The controller: anyone may connect (enrollment is anonymous); callers make a few short requests. */
export const CONTROLLER_BOUNDS: Readonly<Http2ServerBounds> = {
  firstStreamSilenceMs: 1000,
  handshakeTimeoutMs: 10_000,
  idleSessionMs: 30_000,
  maxConcurrentStreams: 128,
  maxHeaderListBytes: 16 * 1024,
  maxHeaderPairs: 64,
  authenticated: {firstStreamSilenceMs: 10_000, maxIdleSessions: 4096, pingTimeoutMs: 20_000, silenceMs: 10_000},
  maxIdleSessions: 128,
  maxSessionMemoryMb: 10,
  pingTimeoutMs: 2000,
  resetBurst: 100,
  resetRatePerSecond: 20,
  silenceMs: 1000,
}

/**
 * HBONE (agents, mutual TLS): pooled sessions idle up to the client's 5-minute release and carry up to
 * 100 streams each (docs/hbone.md §6). Clients reset streams only on errors, never in bulk.
 */
export const HBONE_BOUNDS: Readonly<Http2ServerBounds> = {
  firstStreamSilenceMs: 1000,
  handshakeTimeoutMs: 10_000,
  idleSessionMs: 6 * 60_000,
  maxConcurrentStreams: 200,
  maxHeaderListBytes: 16 * 1024,
  maxHeaderPairs: 64,
  // every HBONE peer is authenticated (mutual TLS is required): the same rules
  authenticated: {firstStreamSilenceMs: 1000, maxIdleSessions: 1024, pingTimeoutMs: 20_000, silenceMs: 10_000},
  maxIdleSessions: 1024,
  maxSessionMemoryMb: 64,
  pingTimeoutMs: 20_000,
  resetBurst: 200,
  resetRatePerSecond: 50,
  silenceMs: 10_000,
}

/** The node:http2 server options that carry BOUNDS (merge your own settings over `settings`). */
export function boundedServerOptions(bounds: Http2ServerBounds): Pick<
  SecureServerOptions,
  'handshakeTimeout' | 'maxHeaderListPairs' | 'maxOutstandingPings' | 'maxSessionInvalidFrames' | 'maxSessionMemory'
  | 'maxSessionRejectedStreams' | 'maxSettings' | 'settings' | 'streamResetBurst' | 'streamResetRate' | 'unknownProtocolTimeout'
> {
  return {
    handshakeTimeout: bounds.handshakeTimeoutMs,
    maxHeaderListPairs: bounds.maxHeaderPairs,
    maxOutstandingPings: 10,
    maxSessionInvalidFrames: 100,
    maxSessionMemory: bounds.maxSessionMemoryMb,
    maxSessionRejectedStreams: 100,
    maxSettings: 32,
    settings: {enablePush: false, maxConcurrentStreams: bounds.maxConcurrentStreams, maxHeaderListSize: bounds.maxHeaderListBytes},
    // nghttp2's own limiter GOAWAYs later than ours destroys; it stays as a second line.
    streamResetBurst: bounds.resetBurst * 2,
    streamResetRate: bounds.resetRatePerSecond * 2,
    unknownProtocolTimeout: bounds.handshakeTimeoutMs,
  }
}

export type SessionEndReason = 'idle' | 'idle-evicted' | 'no-ping-answer' | 'rapid-reset'

/** RFC 9113 §7: the GOAWAY code for a peer that floods us. */
const ENHANCE_YOUR_CALM = 11

export interface GuardHooks {
  /** a session the guard ended (for a debug log line; routine under attack, so never louder) */
  ended?: (reason: SessionEndReason, remote: string) => void
}

export interface Http2Guard {
  readonly sessionCount: number
  readonly idleCount: number
  /** stop the guard's timers (the server is closing) */
  close(): void
}

interface Guarded {
  /** the peer presented a certificate our CA signed */
  authenticated: boolean
  /** no stream yet */
  fresh: boolean
  idleSince: number
  idleTimer?: NodeJS.Timeout
  openStreams: number
  probing: boolean
  remote: string
  resetTokens: number
  resetRefilledAt: number
}

/** Apply BOUNDS' session-level rules to every session SERVER accepts; returns counters for tests and dumps. */
export function guardHttp2Server(server: Http2SecureServer, bounds: Http2ServerBounds, hooks: GuardHooks = {}): Http2Guard {
  const guard = new SessionGuard(bounds, hooks)
  server.on('session', (session: Http2Session) => guard.admit(session))
  // HTTP/1.1 connections (the controller allows them for curl) get the same deadline for idleness.
  server.on('secureConnection', (socket: Socket & {alpnProtocol?: false | string}) => {
    if (socket.alpnProtocol === 'h2') return
    socket.setTimeout(bounds.idleSessionMs, () => socket.destroy())
  })
  return guard
}

/** The sessions of one server and the rules they live by. */
class SessionGuard implements Http2Guard {
  private readonly sessions = new Map<Http2Session, Guarded>()
  // Insertion order = idle order: a session is (re)inserted when it becomes idle. Anonymous and
  // authenticated peers are capped apart.
  private readonly idle = new Map<Http2Session, Guarded>()
  private readonly idleAuthenticated = new Map<Http2Session, Guarded>()

  constructor(private readonly bounds: Http2ServerBounds, private readonly hooks: GuardHooks) {}

  get idleCount(): number {
    return this.idle.size + this.idleAuthenticated.size
  }

  get sessionCount(): number {
    return this.sessions.size
  }

  close(): void {
    for (const state of this.sessions.values()) clearTimeout(state.idleTimer)
  }

  /** Watch a new SESSION: idle until its first stream, probed when silent. */
  admit(session: Http2Session): void {
    const socket = session.socket as (Socket & {authorized?: boolean}) | undefined
    const state: Guarded = {
      authenticated: socket?.authorized === true,
      fresh: true,
      idleSince: Date.now(), openStreams: 0, probing: false, remote: `${socket?.remoteAddress ?? '?'}:${socket?.remotePort ?? '?'}`,
      resetRefilledAt: Date.now(), resetTokens: this.bounds.resetBurst,
    }
    this.sessions.set(session, state)
    session.on('timeout', () => this.probe(session, state))
    session.setTimeout(this.rulesOf(state).firstStreamSilenceMs)
    session.on('stream', (stream: ServerHttp2Stream) => this.onStream(session, state, stream))
    // A session error (protocol error Node did notice, socket error) ends the session, never the server.
    session.on('error', () => session.destroy())
    session.once('close', () => {
      clearTimeout(state.idleTimer)
      this.sessions.delete(session)
      this.idleOf(state).delete(session)
    })
    this.becomeIdle(session, state)
  }

  private idleOf(state: Guarded): Map<Http2Session, Guarded> {
    return state.authenticated ? this.idleAuthenticated : this.idle
  }

  private rulesOf(state: Guarded): Http2ServerBounds['authenticated'] {
    return state.authenticated ? this.bounds.authenticated : this.bounds
  }

  private silence(state: Guarded): number {
    return state.fresh ? this.rulesOf(state).firstStreamSilenceMs : this.rulesOf(state).silenceMs
  }

  private end(session: Http2Session, reason: SessionEndReason): void {
    const state = this.sessions.get(session)
    this.hooks.ended?.(reason, state?.remote ?? '?')
    // destroy() sends GOAWAY(NO_ERROR); a code needs an error to go with it.
    if (reason === 'rapid-reset') session.destroy(new Error('the peer reset too many streams'), ENHANCE_YOUR_CALM)
    else session.destroy()
  }

  private becomeIdle(session: Http2Session, state: Guarded): void {
    state.idleSince = Date.now()
    const pool = this.idleOf(state)
    pool.delete(session)
    pool.set(session, state)
    clearTimeout(state.idleTimer)
    state.idleTimer = setTimeout(() => this.end(session, 'idle'), this.bounds.idleSessionMs)
    state.idleTimer.unref()
    while (pool.size > this.rulesOf(state).maxIdleSessions) {
      const [oldest] = pool.keys()
      pool.delete(oldest!)
      this.end(oldest!, 'idle-evicted')
    }
  }

  /** A silent session gets a PING; no answer in time ends it. */
  private probe(session: Http2Session, state: Guarded): void {
    if (state.probing || session.destroyed) return
    state.probing = true
    // Timers run before the loop reads sockets: after a busy stretch (a subscribe storm) the answer may be
    // waiting unread. Judge once this turn's reads are done.
    const deadline = setTimeout(() => setImmediate(() => {
      if (state.probing) this.end(session, 'no-ping-answer')
    }), state.fresh ? 2 * this.rulesOf(state).firstStreamSilenceMs : this.rulesOf(state).pingTimeoutMs)
    deadline.unref()
    const answered = (): void => {
      clearTimeout(deadline)
      state.probing = false
      if (!session.destroyed) session.setTimeout(this.silence(state)) // the timeout fires once per silence: re-arm
    }

    try {
      if (!session.ping(answered)) answered() // too many outstanding pings: the peer is being probed already
    } catch {
      clearTimeout(deadline)
      session.destroy()
    }
  }

  private onStream(session: Http2Session, state: Guarded, stream: ServerHttp2Stream): void {
    if (state.fresh) {
      state.fresh = false
      session.setTimeout(this.rulesOf(state).silenceMs)
    }

    if (state.openStreams++ === 0) {
      this.idleOf(state).delete(session)
      clearTimeout(state.idleTimer)
    }

    // 'aborted' also follows our own resets; a peer's reset before any answer is what a flood is made of
    // (our own resets come after the answer: a tunnel's relay, a handler cut short).
    stream.once('aborted', () => {
      if (!stream.headersSent) this.onPeerReset(session, state)
    })
    stream.once('close', () => {
      if (--state.openStreams === 0 && !session.destroyed) this.becomeIdle(session, state)
    })
  }

  /** Rapid reset: each peer reset takes a token from the session's bucket; an empty bucket ends the session. */
  private onPeerReset(session: Http2Session, state: Guarded): void {
    const now = Date.now()
    state.resetTokens = Math.min(this.bounds.resetBurst, state.resetTokens + ((now - state.resetRefilledAt) / 1000) * this.bounds.resetRatePerSecond)
    state.resetRefilledAt = now
    if (--state.resetTokens < 0) this.end(session, 'rapid-reset')
  }
}

// The HBONE client pool: HTTP/2 sessions over mutual TLS, keyed by (source identity, destination
// identity, destination address) as ztunnel keys them. At most MAX_STREAMS streams per session (a
// new session opens when all are full), PING keepalive, idle release, GOAWAY → no new streams.
// `open()` resolves with a CONNECT stream only once the peer answered 200. (The command imports this
// domain lazily, so node:http2 is loaded only by `agent run`.)
import {type ClientHttp2Session, type ClientHttp2Stream, connect, type IncomingHttpHeaders, type OutgoingHttpHeaders} from 'node:http2'
import type {Duplex} from 'node:stream'
import {connect as tlsConnect, type TLSSocket} from 'node:tls'

import {formatHostPort, type HostPort, parseHostPort} from '../address.js'
import type {ResponseFlag} from '../observe/metrics.js'
import {type HboneDestination, POOL_DEFAULTS, type PooledEntry, PooledSessions, type PoolSessionInfo} from './pool-sessions.js'
import {H2_MAX_SESSION_MEMORY_MB, H2_SETTINGS, keepalive, raiseConnectionWindow} from './relay.js'
import {type Credentials, HBONE_ALPN, peerIdentity, pinServerIdentity} from './tls.js'

export interface PoolOptions {
  connectTimeoutMs?: number
  /**
   * the stream under TLS, dialled yourself (in-pod: a TCP connection from inside the source pod's netns,
   * with the skip mark; an app client: a relay stream through a hub)
   */
  connectSocket?: (address: HostPort) => Duplex
  credentials: Credentials
  /** release a session after it carried no stream for this long (ztunnel: 5 min) */
  idleTimeoutMs?: number
  isRevoked: (serial: string) => boolean
  keepaliveIntervalMs?: number
  keepaliveTimeoutMs?: number
  maxStreamsPerSession?: number
  /** how long to wait for the CONNECT response (the peer dials its target first) */
  responseTimeoutMs?: number
}

export interface OpenedTunnel {
  peerSerial?: string
  stream: ClientHttp2Stream
}

/** A failed CONNECT attempt, with the words for the access log and the metric flag. */
export class HboneError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly flag: ResponseFlag,
    /** another endpoint may succeed (dial/TLS/upstream failures), unlike a 400/401 refusal */
    readonly retryable: boolean,
    readonly status?: number,
    /** a refusal's ztctl-reason header: the destination's words (app refusals carry them) */
    readonly reason?: string,
  ) {
    super(message)
  }
}

interface PooledSession extends PooledEntry {
  ready: Promise<void>
  session: ClientHttp2Session
}

const STATUS_TEXT: Record<number, string> = {400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 503: 'Service Unavailable'}

export class HbonePool {
  private readonly options: Required<Omit<PoolOptions, 'connectSocket'>> & Pick<PoolOptions, 'connectSocket'>
  private readonly sessions: PooledSessions<PooledSession>
  private closed = false

  constructor(options: PoolOptions) {
    this.options = {...POOL_DEFAULTS, ...options}
    this.sessions = new PooledSessions<PooledSession>({
      closeGracefully: (pooled) => pooled.session.close(),
      connect: (key, destination) => this.connect(key, destination),
      destroy: (pooled) => pooled.session.destroy(),
      usable: (pooled) => !pooled.session.closed && !pooled.session.destroyed,
    }, this.options)
  }

  /** Open a CONNECT stream to TARGET through DESTINATION; rejects with HboneError. */
  async open(destination: HboneDestination, target: string, headers: OutgoingHttpHeaders): Promise<OpenedTunnel> {
    if (destination.via === 'hub') throw new HboneError('ZT_ERR_NO_HUB', `${destination.spiffe} is reached only through a hub, and hubs need the native data path (--data-path native)`, 'CONNECT', false)
    if (this.closed) throw new HboneError('ZT_ERR_POOL_DRAINING', 'pool draining', 'CONNECT', false)
    const pooled = this.sessions.checkout(this.options.credentials.identity.spiffe, destination)
    let stream: ClientHttp2Stream | undefined
    try {
      await pooled.ready
      stream = pooled.session.request({':authority': target, ':method': 'CONNECT', ...headers}, {endStream: false})
    } catch (error) {
      this.sessions.release(pooled)
      throw describeHboneFailure(destination, error, this.options.responseTimeoutMs)
    }

    stream.on('close', () => this.sessions.release(pooled))
    const response = await this.awaitResponse(stream, destination)
    const status = Number(response[':status'])
    if (status !== 200) {
      stream.close()
      const reason = response['ztctl-reason']
      throw statusError(status, destination, typeof reason === 'string' ? reason.slice(0, 200) : undefined)
    }

    return {peerSerial: pooled.peerSerial, stream}
  }

  /** Destroy every session whose peer matches (revoked certificate, removed agent). */
  closeWhere(predicate: (session: {peerSerial?: string; spiffe: string}) => boolean): number {
    return this.sessions.closeWhere(predicate)
  }

  list(): PoolSessionInfo[] {
    return this.sessions.list()
  }

  /** Stop opening streams; sessions close (GOAWAY) once their streams finish. */
  drain(): void {
    this.closed = true
    for (const pooled of this.sessions.all()) {
      pooled.draining = true
      if (!pooled.session.closed) pooled.session.close()
    }
  }

  destroy(): void {
    this.closed = true
    this.sessions.destroyAll()
  }

  private connect(key: string, destination: HboneDestination): PooledSession {
    const address = parseHostPort(destination.address)
    if (!address) throw new HboneError('ZT_ERR_HBONE_ADDRESS', `bad HBONE address ${JSON.stringify(destination.address)}`, 'CONNECT', true)
    const {credentials, isRevoked} = this.options
    const session = connect(`https://${formatHostPort(address)}`, {
      createConnection: () =>
        tlsConnect({
          ALPNProtocols: HBONE_ALPN,
          checkServerIdentity: pinServerIdentity(destination.spiffe, isRevoked),
          host: address.host,
          port: address.port,
          ...(this.options.connectSocket ? {socket: this.options.connectSocket(address)} : {}),
          rejectUnauthorized: true,
          secureContext: credentials.secureContext,
        }),
      maxSessionMemory: H2_MAX_SESSION_MEMORY_MB,
      peerMaxConcurrentStreams: this.options.maxStreamsPerSession,
      settings: H2_SETTINGS,
    })
    const pooled: PooledSession = {active: 0, address: destination.address, draining: false, key, ready: Promise.resolve(), session, spiffe: destination.spiffe}
    pooled.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const error = Object.assign(new Error('connect timeout'), {code: 'ETIMEDOUT'})
        reject(error)
        session.destroy(error)
      }, this.options.connectTimeoutMs)
      timer.unref()
      session.once('connect', () => {
        clearTimeout(timer)
        pooled.peerSerial = peerIdentity(session.socket as TLSSocket).serial
        raiseConnectionWindow(session)
        keepalive(session, this.options.keepaliveIntervalMs, this.options.keepaliveTimeoutMs)
        resolve()
      })
      session.once('error', (error) => {
        clearTimeout(timer)
        reject(error)
      })
      session.once('close', () => {
        clearTimeout(timer)
        reject(new Error('the HBONE connection closed before it was established'))
      })
    })
    pooled.ready.catch(() => {}) // observed by open(); avoid an unhandled rejection when nobody waits
    session.on('error', () => {}) // reported through the streams that fail
    session.on('goaway', () => {
      pooled.draining = true
      this.sessions.forget(pooled)
    })
    session.once('close', () => this.sessions.forget(pooled))
    return pooled
  }

  private async awaitResponse(stream: ClientHttp2Stream, destination: HboneDestination): Promise<IncomingHttpHeaders> {
    return new Promise((resolve, reject) => {
      // Every listener goes once the outcome is known: a tunnel that later closes normally must not
      // build and reject errors for a promise that settled long ago (it showed up in CPU profiles).
      const settle = (): void => {
        clearTimeout(timer)
        stream.off('response', onResponse)
        stream.off('error', fail)
        stream.off('close', onClose)
      }

      const fail = (error: unknown): void => {
        settle()
        reject(describeHboneFailure(destination, error, this.options.responseTimeoutMs))
      }

      const onResponse = (headers: IncomingHttpHeaders): void => {
        settle()
        resolve(headers)
      }

      const onClose = (): void => fail(new Error(`the stream was reset (code ${stream.rstCode}) before a response`))
      const timer = setTimeout(() => {
        stream.close()
        fail(Object.assign(new Error('no CONNECT response'), {code: 'ZT_ERR_RESPONSE_TIMEOUT'}))
      }, this.options.responseTimeoutMs)
      timer.unref()
      stream.once('response', onResponse)
      stream.once('error', fail)
      stream.once('close', onClose)
    })
  }
}

/** A CONNECT answered with something else than 200. */
export function statusError(status: number, destination: HboneDestination, reason?: string): HboneError {
  return new HboneError(
    'ZT_ERR_HBONE_STATUS',
    `http status: ${status} ${STATUS_TEXT[status] ?? ''}`.trimEnd() + (reason ? ` — ${destination.spiffe}: ${reason}` : statusHint(status, destination)),
    status === 401 || status === 403 ? 'DENY' : 'CONNECT',
    status === 503,
    status,
    reason,
  )
}

function statusHint(status: number, destination: HboneDestination): string {
  if (status === 401) return ` — ${destination.spiffe} refused this identity (policy, allow list or revoked certificate)`
  if (status === 400) return ` — ${destination.spiffe} does not serve this target (stale configuration?)`
  if (status === 503) return ` — ${destination.spiffe} could not reach the target`
  return ''
}

/** A failed dial, handshake, identity pin or response wait, in words for the access log. */
export function describeHboneFailure(destination: HboneDestination, error: unknown, responseTimeoutMs: number): HboneError {
  if (error instanceof HboneError) return error
  const err = error as NodeJS.ErrnoException
  const where = `${destination.address} (${destination.spiffe})`
  switch (err.code) {
    case 'ETIMEDOUT': {
      return new HboneError('ZT_ERR_HBONE_TIMEOUT', `timed out dialling ${destination.address} — is the HBONE port reachable?`, 'CONNECT', true)
    }

    case 'ECONNREFUSED': {
      return new HboneError('ZT_ERR_HBONE_REFUSED', `connection refused dialling ${where} — is the agent running and its HBONE port right?`, 'CONNECT', true)
    }

    case 'ZT_ERR_PEER_IDENTITY':
    case 'ZT_ERR_PEER_REVOKED': {
      return new HboneError(err.code, `${where}: ${err.message}`, 'IDENTITY_ERROR', true)
    }

    case 'ZT_ERR_RESPONSE_TIMEOUT': {
      return new HboneError(err.code, `${where} did not answer the CONNECT within ${responseTimeoutMs} ms`, 'CONNECT', true)
    }

    default: {
      const tls = /SSL|TLS|certificate|alert|handshake/i.test(`${err.code ?? ''} ${err.message}`)
      return new HboneError(
        tls ? 'ZT_ERR_HBONE_TLS' : 'ZT_ERR_HBONE_DIAL',
        tls ? `TLS handshake with ${where} failed: ${err.message}` : `HBONE connection to ${where} failed: ${err.message}`,
        tls ? 'TLS_FAILURE' : 'CONNECT',
        true,
      )
    }
  }
}

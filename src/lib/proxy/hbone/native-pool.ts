// The HBONE client pool on the native data path: the addon holds the TLS + HTTP/2 sessions; this keeps
// ztunnel's pooling policy (hbone-pool.ts): sessions keyed by (source identity, destination identity,
// destination address), at most MAX_STREAMS streams each, the server's identity pinned, idle release,
// GOAWAY → no new streams. `open()` resolves once the peer answered 200; the bytes then flow in C. A
// destination reached through a hub gets its session over a hub relay (hub-links.ts): an inner session
// with the destination's own certificate, pinned the same way, pooled the same way.
import {type HostPort, parseHostPort, resolveHost} from '../address.js'
import type {HboneEngine, PeerCertificateInfo} from './hbone-engine.js'
import {describeHboneFailure, HboneError, type PoolOptions, statusError} from './hbone-pool.js'
import type {HubLinks} from './hub-links.js'
import type {NativeContexts} from './native-tls.js'
import {type HboneDestination, POOL_DEFAULTS, type PooledEntry, PooledSessions, type PoolSessionInfo, VIA_HUB} from './pool-sessions.js'
import {checkPinnedPeer} from './tls.js'

export type NativePoolOptions = Omit<PoolOptions, 'connectSocket' | 'credentials'> & {
  contexts: NativeContexts
  engine: HboneEngine
  /** the hubs destinations without an HBONE address are reached through */
  hubs?: HubLinks
  sourceSpiffe: () => string
  /** an unconnected socket to dial ADDRESS from (a pod's: its namespace, its mark); default: a new one in the agent's */
  socketFor?: (address: HostPort) => number
}

interface NativeSession extends PooledEntry {
  /** the addon's session id, once connecting started */
  id?: number
  ready: Promise<number>
}

type ClosedCallback = (fromPlain: number, toPlain: number, error: string | undefined) => void

/** An opened tunnel: who answered, and where its end is reported. */
export interface NativeOpened {
  peerSerial?: string
  /** called once when the established tunnel has closed (bytes, and why when it failed) */
  onClosed(callback: ClosedCallback): void
}

/** A session taken from the pool for one tunnel. */
interface Checkout {
  destination: HboneDestination
  pooled: NativeSession
  /** give the session back (once; later calls do nothing) */
  release(): void
}

export class NativeHbonePool {
  private readonly options: Required<Omit<NativePoolOptions, 'hubs' | 'socketFor'>> & Pick<NativePoolOptions, 'hubs' | 'socketFor'>
  private readonly sessions: PooledSessions<NativeSession>
  private closed = false

  constructor(options: NativePoolOptions) {
    this.options = {...POOL_DEFAULTS, ...options}
    const close = (pooled: NativeSession, graceful: boolean): void => {
      if (pooled.id !== undefined) options.engine.native.sessionClose(pooled.id, graceful)
    }

    this.sessions = new PooledSessions<NativeSession>({
      closeGracefully: (pooled) => close(pooled, true),
      connect: (key, destination) => this.connect(key, destination),
      destroy: (pooled) => close(pooled, false),
      usable: () => true, // a closed session is forgotten at once (its closed/goaway event)
    }, this.options)
  }

  /**
   * CONNECT to TARGET through DESTINATION for the plain socket the addon holds as TUNNEL_ID. A proxy's
   * handshake leftovers (PROXY.prefix) go on the stream first; PROXY.reply reaches the client at 200.
   */
  async open(tunnelId: number, destination: HboneDestination, target: string, headers: string[], proxy?: {prefix?: Buffer; reply?: Buffer}): Promise<NativeOpened> {
    if (this.closed) throw new HboneError('ZT_ERR_POOL_DRAINING', 'pool draining', 'CONNECT', false)
    const checkout = this.checkout(destination)
    const sessionId = await this.readySession(checkout)
    this.sendConnect(tunnelId, sessionId, checkout, {headers, proxy, target})
    const tunnel = this.watchAnswer(tunnelId, checkout.release)
    const {engine} = this.options
    const {refusal, status} = await tunnel.answer.catch((error: unknown) => {
      engine.forgetTunnel(tunnelId)
      checkout.release()
      throw describeHboneFailure(destination, error, this.options.responseTimeoutMs)
    })
    if (status !== 200) {
      engine.forgetTunnel(tunnelId)
      checkout.release()
      throw statusError(status, destination, refusal)
    }

    return {onClosed: tunnel.onClosed, peerSerial: checkout.pooled.peerSerial}
  }

  /** Close every session whose peer matches (revoked certificate, removed agent). */
  closeWhere(predicate: (session: {peerSerial?: string; spiffe: string}) => boolean): number {
    return this.sessions.closeWhere((pooled) => pooled.id !== undefined && predicate(pooled))
  }

  list(): PoolSessionInfo[] {
    return this.sessions.list()
  }

  /** Stop opening streams; sessions close (GOAWAY) once their streams finish. */
  drain(): void {
    this.closed = true
    for (const pooled of this.sessions.all()) {
      pooled.draining = true
      if (pooled.active === 0 && pooled.id !== undefined) this.options.engine.native.sessionClose(pooled.id, true)
    }
  }

  destroy(): void {
    this.closed = true
    this.sessions.destroyAll()
  }

  private connect(key: string, destination: HboneDestination): NativeSession {
    const pooled: NativeSession = {active: 0, address: destination.address, draining: false, key, ready: Promise.resolve(0), spiffe: destination.spiffe}
    pooled.ready = this.dial(pooled, destination)
    pooled.ready.catch(() => this.sessions.forget(pooled)) // observed by open()
    return pooled
  }

  private async dial(pooled: NativeSession, destination: HboneDestination): Promise<number> {
    if (destination.via === 'hub') return this.dialViaHub(pooled, destination)
    const address = parseHostPort(destination.address)
    if (!address) throw new HboneError('ZT_ERR_HBONE_ADDRESS', `bad HBONE address ${JSON.stringify(destination.address)}`, 'CONNECT', true)
    const host = await resolveHost(address.host)
    const {contexts, engine, isRevoked} = this.options
    const fd = this.options.socketFor?.({host, port: address.port})
    return new Promise<number>((resolve, reject) => {
      const id = engine.connect(contexts.client, host, address.port, this.options, {
        closed: () => this.sessions.forget(pooled),
        failed(reason) {
          reject(Object.assign(new Error(reason), {code: /^E[A-Z]+(?=:)/.exec(reason)?.[0]}))
        },
        goaway: () => {
          pooled.draining = true
          this.sessions.forget(pooled)
        },
        ready(peer: PeerCertificateInfo) {
          const problem = checkPinnedPeer(destination.spiffe, peer, isRevoked)
          if (problem) {
            engine.native.sessionClose(id, false)
            reject(problem)
            return
          }

          pooled.peerSerial = peer.serial
          resolve(id)
        },
      }, fd)
      pooled.id = id
    })
  }

  private async dialViaHub(pooled: NativeSession, destination: HboneDestination): Promise<number> {
    const {hubs, isRevoked} = this.options
    if (!hubs || !destination.agent) throw new HboneError('ZT_ERR_NO_HUB', `${destination.spiffe} accepts no connection and this agent has no hub (--hub)`, 'CONNECT', false)
    try {
      const {hub, sessionId} = await hubs.dial({...destination, agent: destination.agent}, {
        closed: () => this.sessions.forget(pooled),
        goaway: () => {
          pooled.draining = true
          this.sessions.forget(pooled)
        },
        pin: (peer: PeerCertificateInfo) => {
          const problem = checkPinnedPeer(destination.spiffe, peer, isRevoked)
          if (!problem) pooled.peerSerial = peer.serial
          return problem
        },
      }, this.options.connectTimeoutMs)
      pooled.id = sessionId
      pooled.address = `${VIA_HUB}:${hub}`
      return sessionId
    } catch (error) {
      const err = error as Error & {code?: string; status?: number}
      if (err.code === 'ZT_ERR_PEER_IDENTITY' || err.code === 'ZT_ERR_PEER_REVOKED') throw err
      throw new HboneError(err.code ?? 'ZT_ERR_HUB_RELAY', `no hub could reach ${destination.agent} (${destination.spiffe}): ${err.message}`, err.status === 401 ? 'DENY' : 'CONNECT', err.status !== 401, err.status)
    }
  }

  /** A pooled session for DESTINATION, given back to the pool once (release), whatever happens to the tunnel. */
  private checkout(destination: HboneDestination): Checkout {
    const pooled = this.sessions.checkout(this.options.sourceSpiffe(), destination)
    let released = false
    return {
      destination,
      pooled,
      release: () => {
        if (released) return
        released = true
        this.sessions.release(pooled)
      },
    }
  }

  /** The addon's id of the checked-out session once it is connected (and its peer pinned). */
  private async readySession({destination, pooled, release}: Checkout): Promise<number> {
    try {
      return await pooled.ready
    } catch (error) {
      release()
      throw describeHboneFailure(destination, error, this.options.responseTimeoutMs)
    }
  }

  /** The CONNECT on SESSIONID; throws (the session given back) when it could not be sent. */
  private sendConnect(tunnelId: number, sessionId: number, {destination, pooled, release}: Checkout, request: {headers: string[]; proxy?: {prefix?: Buffer; reply?: Buffer}; target: string}): void {
    let opened: boolean
    try {
      opened = this.options.engine.native.open(tunnelId, sessionId, request.target, request.headers, request.proxy?.prefix, request.proxy?.reply)
    } catch (error) {
      release() // the client tunnel is gone (aborted meanwhile): nothing was sent
      throw new HboneError('ZT_ERR_HBONE_DIAL', `cannot open a CONNECT stream: ${(error as Error).message}`, 'CONNECT', false)
    }

    if (!opened) {
      // The session stopped taking streams (GOAWAY) between checkout and now.
      pooled.draining = true
      release()
      throw new HboneError('ZT_ERR_HBONE_DIAL', `HBONE connection to ${destination.address} (${destination.spiffe}) is closing`, 'CONNECT', true)
    }
  }

  /**
   * The CONNECT's answer on TUNNELID (no answer in responseTimeoutMs cancels it); when the established
   * tunnel ends, the session is given back and the callback set with onClosed told.
   */
  private watchAnswer(tunnelId: number, release: () => void): {answer: Promise<{refusal?: string; status: number}>; onClosed: NativeOpened['onClosed']} {
    const {engine, responseTimeoutMs} = this.options
    let onClosed: ClosedCallback | undefined
    const answer = new Promise<{refusal?: string; status: number}>((resolve, reject) => {
      const timer = setTimeout(() => {
        engine.native.cancel(tunnelId)
        reject(Object.assign(new Error('no CONNECT response'), {code: 'ZT_ERR_RESPONSE_TIMEOUT'}))
      }, responseTimeoutMs)
      timer.unref()
      engine.watchTunnel(tunnelId, {
        closed(fromPlain, toPlain, error) {
          release()
          onClosed?.(fromPlain, toPlain, error)
        },
        response(code, reason) {
          clearTimeout(timer)
          if (code === 0) reject(new Error(reason ?? 'the stream failed before a response'))
          else resolve({refusal: reason, status: code})
        },
      })
    })
    return {
      answer,
      onClosed(callback) {
        onClosed = callback
      },
    }
  }
}

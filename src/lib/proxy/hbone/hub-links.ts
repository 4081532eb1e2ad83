// An agent's connections to its hubs (`agent run --hub HOST:PORT`, repeatable): one outbound mutual-TLS
// HTTP/2 session per hub, kept up (reconnect with bounded backoff; PINGs measure the round trip and
// find a dead hub within seconds), with a few standby `accept` streams the hub holds until a source
// needs this agent: each then carries an inner HBONE session (TLS between the two agents' own
// certificates, the hub sees ciphertext) to our virtual listener. Sources open `relay` streams the same
// way, lowest round trip first, moving on to the next hub when one cannot reach the destination.
// Wire format: docs/hbone.md "Hubs".
import {type HubAttachment, MAX_HUBS} from '../../config/types.js'
import {parseHostPort, resolveHost} from '../address.js'
import type {Logger} from '../observe/log.js'
import type {HboneEngine, PeerCertificateInfo} from './hbone-engine.js'
import type {NativeContexts} from './native-tls.js'
import type {HboneDestination} from './pool-sessions.js'

/** Standby streams each hub holds for us; one is opened again as soon as one is used. */
export const STANDBY_STREAMS = 4
/** The hub's identity must carry this role. */
export const HUB_ROLE = 'hub'
/** The port in a hub stream's :authority (the inner session is HBONE). */
export const HUB_AUTHORITY_PORT = 15_008
const BACKOFF_MIN_MS = 200
const BACKOFF_MAX_MS = 5000
/** A hub that answered "not attached here" is skipped for that destination this long (unless no other is left). */
const NEGATIVE_TTL_MS = 3000
/** How often the attachments are compared for a change report. */
const REPORT_INTERVAL_MS = 1000
/** A dial while no hub is connected yet (start-up, a reconnect) waits this long for one. */
const FIRST_CONNECT_WAIT_MS = 3000

export interface HubLinkTiming {
  connectTimeoutMs: number
  /** PING interval and answer deadline on the hub connection (dead-hub detection) */
  keepaliveIntervalMs: number
  keepaliveTimeoutMs: number
}

export const HUB_TIMING: HubLinkTiming = {connectTimeoutMs: 5000, keepaliveIntervalMs: 2000, keepaliveTimeoutMs: 3000}

export interface HubLinksOptions {
  /** `[NAME@]HOST:PORT` each; NAME pins the hub's identity */
  addresses: string[]
  contexts: NativeContexts
  engine: HboneEngine
  /** whether SPIFFE is an identity with role `hub` in the mesh (and not revoked) */
  isHub: (peer: PeerCertificateInfo, pinnedName?: string) => string | undefined
  /** the virtual listener our inner server sessions (over standby streams) belong to; undefined: no standby streams */
  listenerId?: number
  logger: () => Logger
  /** attachments changed (at most once a second) */
  onChange?: (attachments: HubAttachment[]) => void
  selfName: string
  timing?: Partial<HubLinkTiming>
}

/** What a relay dial needs to pin and watch its inner session (the pool's handler). */
export interface InnerSessionHandler {
  closed(reason: string): void
  goaway(): void
  /** pin the peer: an Error refuses it */
  pin(peer: PeerCertificateInfo): Error | undefined
}

interface Link {
  address: string
  attempt: number
  hub?: string
  lastError?: string
  /** destination name → until when this hub said it cannot reach it */
  negative: Map<string, number>
  pinnedName?: string
  /** carriers (ours and standbys) answered 200 and still open */
  relays: Set<number>
  retryTimer?: NodeJS.Timeout
  sessionId?: number
  standby: Set<number>
  state: HubAttachment['state']
}

export class HubLinks {
  private readonly links: Link[]
  private readonly timing: HubLinkTiming
  private closed = false
  private reportTimer?: NodeJS.Timeout
  private lastReport = ''
  /** dials waiting for any hub to connect */
  private readonly connectWaiters = new Set<() => void>()

  constructor(private readonly options: HubLinksOptions) {
    if (options.addresses.length > MAX_HUBS) throw new Error(`at most ${MAX_HUBS} hubs`)
    this.timing = {...HUB_TIMING, ...options.timing}
    this.links = options.addresses.map((text) => {
      const at = text.lastIndexOf('@')
      return {address: text.slice(at + 1), attempt: 0, negative: new Map(), pinnedName: at > 0 ? text.slice(0, at) : undefined, relays: new Set<number>(), standby: new Set<number>(), state: 'down' as const}
    })
  }

  get size(): number {
    return this.links.length
  }

  /** Connect every hub (again) and keep them connected until close(). */
  start(): void {
    if (this.closed) return
    for (const link of this.links) if (link.state === 'down' && !link.retryTimer) void this.connect(link)
    if (this.options.onChange && !this.reportTimer) {
      this.reportTimer = setInterval(() => this.report(), REPORT_INTERVAL_MS)
      this.reportTimer.unref()
    }
  }

  /** Whether any hub is connected now (a destination without an HBONE address can be tried). */
  anyConnected(): boolean {
    return this.links.some((link) => link.state === 'connected')
  }

  attachments(): HubAttachment[] {
    return this.links.map((link) => ({
      address: link.address,
      hub: link.hub,
      lastError: link.lastError,
      rttMs: link.sessionId === undefined ? undefined : roundMs(this.options.engine.sessionInfo(link.sessionId)?.rttMs),
      state: link.state,
      streams: link.relays.size,
    }))
  }

  /**
   * An inner HBONE session with DESTINATION through the connected hubs, lowest round trip first; the next
   * hub is tried when one cannot reach it. Resolves with the inner session id once its peer is pinned.
   */
  async dial(destination: HboneDestination & {agent: string}, handler: InnerSessionHandler, timeoutMs: number): Promise<{hub: string; sessionId: number}> {
    if (!this.anyConnected() && this.links.some((link) => link.state === 'connecting')) await this.someConnection(Math.min(timeoutMs, FIRST_CONNECT_WAIT_MS))
    const now = Date.now()
    const connected = this.links.filter((link) => link.state === 'connected' && link.sessionId !== undefined)
    const fresh = connected.filter((link) => (link.negative.get(destination.agent) ?? 0) <= now)
    const candidates = (fresh.length > 0 ? fresh : connected).sort((a, b) => this.rtt(a) - this.rtt(b))
    if (candidates.length === 0) {
      throw Object.assign(new Error(`no hub is connected (${this.links.map((link) => `${link.address}: ${link.lastError ?? link.state}`).join('; ')})`), {code: 'ZT_ERR_NO_HUB'})
    }

    const failures: string[] = []
    for (const link of candidates) {
      try {
        const sessionId = await this.relay(link, destination, handler, timeoutMs)
        return {hub: link.hub ?? link.address, sessionId}
      } catch (error) {
        const err = error as Error & {code?: string; status?: number}
        failures.push(`hub ${link.hub ?? link.address}: ${err.message}`)
        if (err.code === 'ZT_ERR_PEER_IDENTITY' || err.code === 'ZT_ERR_PEER_REVOKED') throw err // the destination itself is wrong: no hub helps
        if (err.status === 503 || err.status === 429) link.negative.set(destination.agent, Date.now() + NEGATIVE_TTL_MS)
      }
    }

    const status = /answered 401/.test(failures.join()) ? 401 : undefined
    throw Object.assign(new Error(failures.join('; ')), {code: status === 401 ? 'ZT_ERR_HUB_DENIED' : 'ZT_ERR_HUB_RELAY', status})
  }

  close(): void {
    this.closed = true
    clearInterval(this.reportTimer)
    for (const wake of this.connectWaiters) wake()
    for (const link of this.links) {
      clearTimeout(link.retryTimer)
      if (link.sessionId !== undefined) this.options.engine.native.sessionClose(link.sessionId, false)
    }
  }

  /** Resolves once a hub is connected, or after MS. */
  private someConnection(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.connectWaiters.delete(done)
        resolve()
      }

      const timer = setTimeout(done, ms)
      timer.unref()
      this.connectWaiters.add(done)
    })
  }

  private rtt(link: Link): number {
    return (link.sessionId === undefined ? undefined : this.options.engine.sessionInfo(link.sessionId)?.rttMs) ?? Number.MAX_SAFE_INTEGER
  }

  private relay(link: Link, destination: HboneDestination & {agent: string}, handler: InnerSessionHandler, timeoutMs: number): Promise<number> {
    const {contexts, engine} = this.options
    return new Promise<number>((resolve, reject) => {
      let settled = false
      const opened = engine.carrier(link.sessionId!, `${destination.agent}:${HUB_AUTHORITY_PORT}`, ['ztctl-hub', 'relay'], {
        client: {
          closed: (reason) => handler.closed(reason),
          failed(reason) {
            settled = true
            reject(Object.assign(new Error(reason), {status: hubStatus(reason)}))
          },
          goaway: () => handler.goaway(),
          ready(peer) {
            const problem = handler.pin(peer)
            settled = true
            if (problem) {
              engine.native.sessionClose(opened!.innerId, false)
              reject(problem)
            } else {
              resolve(opened!.innerId)
            }
          },
        },
        contextId: contexts.client,
        keepaliveIntervalMs: 10_000,
        keepaliveTimeoutMs: 20_000,
        timeoutMs,
      }, {
        closed: () => link.relays.delete(opened!.carrierId),
        response(status) {
          if (status === 200) link.relays.add(opened!.carrierId)
        },
      })
      if (!opened && !settled) reject(Object.assign(new Error('the hub connection takes no new stream'), {status: 503}))
    })
  }

  private async connect(link: Link): Promise<void> {
    if (this.closed) return
    link.state = 'connecting'
    link.retryTimer = undefined
    const {contexts, engine} = this.options
    const address = parseHostPort(link.address)
    let host: string
    try {
      if (!address) throw new Error(`bad hub address ${JSON.stringify(link.address)}: expected [NAME@]HOST:PORT`)
      host = await resolveHost(address.host)
    } catch (error) {
      this.down(link, (error as Error).message)
      return
    }

    const id = engine.connect(contexts.client, host, address.port, this.timing, {
      closed: (reason) => this.down(link, `the connection closed: ${reason}`),
      failed: (reason) => this.down(link, reason),
      goaway: () => this.down(link, 'the hub is shutting down (GOAWAY)'),
      ready: (peer) => {
        const hubName = this.options.isHub(peer, link.pinnedName)
        if (!hubName) {
          engine.native.sessionClose(id, false)
          this.down(link, `${link.address} presented ${peer.spiffe ?? 'no identity'}, which is not a hub of this mesh${link.pinnedName ? ` named ${link.pinnedName}` : ''} (role "${HUB_ROLE}")`)
          return
        }

        link.hub = hubName
        link.state = 'connected'
        link.attempt = 0
        link.lastError = undefined
        link.negative.clear()
        this.options.logger().info({address: link.address, component: 'hub', hub: hubName}, 'attached to hub')
        for (let i = 0; i < STANDBY_STREAMS; i++) this.openStandby(link)
        for (const wake of [...this.connectWaiters]) wake()
      },
    })
    link.sessionId = id
  }

  /** A stream the hub holds until a source needs us; once used, another takes its place. */
  private openStandby(link: Link): void {
    const {engine, listenerId} = this.options
    if (listenerId === undefined || link.state !== 'connected' || link.sessionId === undefined || this.closed) return
    const sessionId = link.sessionId
    let carrierId = -1
    const opened = engine.carrier(sessionId, `${this.options.selfName}:${HUB_AUTHORITY_PORT}`, ['ztctl-hub', 'accept'], {listenerId}, {
      closed: () => {
        link.standby.delete(carrierId)
        link.relays.delete(carrierId)
      },
      response: (status, reason) => {
        link.standby.delete(carrierId)
        if (status === 200) {
          link.relays.add(carrierId)
          this.openStandby(link)
        } else if (status !== 0) {
          this.options.logger().warn({address: link.address, component: 'hub', status, reason}, 'the hub refused a standby stream')
        }
      },
    })
    if (!opened) return
    carrierId = opened.carrierId
    link.standby.add(carrierId)
  }

  private down(link: Link, reason: string): void {
    if (link.state === 'connected') this.options.logger().warn({address: link.address, component: 'hub', hub: link.hub, error: reason}, 'detached from hub; reconnecting')
    link.state = 'down'
    link.sessionId = undefined
    link.lastError = reason
    link.standby.clear()
    link.relays.clear()
    if (this.closed || link.retryTimer) return
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(link.attempt++, 10))
    link.retryTimer = setTimeout(() => void this.connect(link), Math.round(base / 2 + Math.random() * (base / 2)))
    link.retryTimer.unref()
  }

  private report(): void {
    const attachments = this.attachments()
    // Round trips change all the time: report on state changes, and on round trips only every 10 s.
    const key = JSON.stringify(attachments.map(({rttMs: _rtt, ...rest}) => rest))
    const periodic = Date.now() % 10_000 < REPORT_INTERVAL_MS
    if (key === this.lastReport && !periodic) return
    this.lastReport = key
    this.options.onChange?.(attachments)
  }
}

/** `the hub answered 503: …` → 503 (for "try another hub"). */
function hubStatus(reason: string): number | undefined {
  const match = /the hub answered (\d{3})/.exec(reason)
  return match ? Number(match[1]) : undefined
}

function roundMs(value: number | undefined): number | undefined {
  return value === undefined ? undefined : Math.round(value * 100) / 100
}

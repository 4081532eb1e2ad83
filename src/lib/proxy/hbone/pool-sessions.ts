// The pooling policy both HBONE client pools share (node:http2 in hbone-pool.ts, native in native-pool.ts):
// sessions keyed by (source identity, destination identity, destination address) as ztunnel keys them,
// at most maxStreamsPerSession streams each (a new session opens when all are full), release after
// idleTimeoutMs without a stream, draining sessions take no new stream. Each pool says how its sessions
// are opened and closed.

/** Where a tunnel goes: the peer agent's HBONE listener and the identity it must prove. */
export interface HboneDestination {
  /** `host:port` of the peer's HBONE listener (VIA_HUB when it is reached through a hub) */
  address: string
  /** the peer agent's name (what a hub relay asks for) */
  agent?: string
  /** the SPIFFE ID the peer must present */
  spiffe: string
  /** `hub`: an inner HBONE session through a hub (hub-links.ts), not a TCP connection to ADDRESS */
  via?: 'hub'
}

/** The address that names "through a hub" in pool keys and dumps. */
export const VIA_HUB = 'hub'


/** One pooled session as /config_dump lists it. */
export interface PoolSessionInfo {
  activeStreams: number
  address: string
  draining: boolean
  peerSerial?: string
  spiffe: string
}

/** The pools' timers and limits when not given (ztunnel's, where it has them). */
export const POOL_DEFAULTS = {
  connectTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  keepaliveIntervalMs: 10_000,
  keepaliveTimeoutMs: 20_000,
  maxStreamsPerSession: 100,
  responseTimeoutMs: 15_000,
}

export interface PooledEntry {
  active: number
  /** `host:port` of the peer's HBONE listener */
  address: string
  draining: boolean
  idleTimer?: NodeJS.Timeout
  key: string
  peerSerial?: string
  spiffe: string
}

export interface SessionLifecycle<E extends PooledEntry> {
  /** end once open streams finish (GOAWAY) */
  closeGracefully(entry: E): void
  /** start a session; the entry comes back with active 0 */
  connect(key: string, destination: HboneDestination): E
  /** end now: streams are reset */
  destroy(entry: E): void
  /** false once the session itself stopped taking streams */
  usable(entry: E): boolean
}

export class PooledSessions<E extends PooledEntry> {
  private readonly byKey = new Map<string, E[]>()

  constructor(
    private readonly lifecycle: SessionLifecycle<E>,
    private readonly limits: {idleTimeoutMs: number; maxStreamsPerSession: number},
  ) {}

  /** A session with a free stream slot towards DESTINATION (a new one if none), its slot taken. */
  checkout(sourceSpiffe: string, destination: HboneDestination): E {
    const key = `${sourceSpiffe}|${destination.spiffe}|${destination.address}`
    const list = this.byKey.get(key) ?? []
    let entry = list.find((candidate) => !candidate.draining && candidate.active < this.limits.maxStreamsPerSession && this.lifecycle.usable(candidate))
    if (!entry) {
      entry = this.lifecycle.connect(key, destination)
      list.push(entry)
      this.byKey.set(key, list)
    }

    entry.active++
    if (entry.idleTimer) {
      clearTimeout(entry.idleTimer)
      entry.idleTimer = undefined
    }

    return entry
  }

  /** Give a slot back: the last one closes a draining session, or starts the idle timer. */
  release(entry: E): void {
    entry.active--
    if (entry.active > 0 || !this.lifecycle.usable(entry)) return
    if (entry.draining) {
      this.lifecycle.closeGracefully(entry)
      return
    }

    entry.idleTimer = setTimeout(() => {
      entry.draining = true
      this.lifecycle.closeGracefully(entry)
    }, this.limits.idleTimeoutMs)
    entry.idleTimer.unref()
  }

  /** The session ended or took GOAWAY: never hand it out again. */
  forget(entry: E): void {
    if (entry.idleTimer) clearTimeout(entry.idleTimer)
    const list = this.byKey.get(entry.key)
    if (!list) return
    const index = list.indexOf(entry)
    if (index >= 0) list.splice(index, 1)
    if (list.length === 0) this.byKey.delete(entry.key)
  }

  all(): E[] {
    return [...this.byKey.values()].flat()
  }

  /** Destroy every session the predicate selects (revoked certificate, removed agent); returns how many. */
  closeWhere(predicate: (entry: E) => boolean): number {
    let count = 0
    for (const entry of this.all()) {
      if (predicate(entry)) {
        count++
        this.lifecycle.destroy(entry)
      }
    }

    return count
  }

  destroyAll(): void {
    for (const entry of this.all()) {
      if (entry.idleTimer) clearTimeout(entry.idleTimer)
      this.lifecycle.destroy(entry)
    }

    this.byKey.clear()
  }

  list(): PoolSessionInfo[] {
    return this.all().map((entry) => ({
      activeStreams: entry.active,
      address: entry.address,
      draining: entry.draining,
      peerSerial: entry.peerSerial,
      spiffe: entry.spiffe,
    }))
  }
}

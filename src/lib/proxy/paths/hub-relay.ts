// The hub's traffic path (`ztctl hub run`): agents attach with one outbound mutual-TLS HTTP/2 session
// each. On it an agent parks standby `accept` streams (CONNECT `<its name>:15008`, `ztctl-hub: accept`)
// and opens `relay` streams (CONNECT `<destination>:15008`, `ztctl-hub: relay`). A relay is admitted
// (identity, revocation, and the mesh's policies at agent level: MeshState.reach), then answered 200
// together with one of the destination's standby streams, and the two are spliced in C. What flows is
// the inner HBONE session between the two agents: TLS the hub cannot read, of which it counts bytes.
// Every queue is bounded: standby streams per agent, relays waiting for a standby (and how long),
// sessions. Wire format: docs/hbone.md "Hubs".
import {HBONE_BOUNDS} from '../../http2/server-bounds.js'
import {type HostPort, parseHostPort, resolveHost} from '../address.js'
import type {HboneEngine, PeerCertificateInfo, ServerSessionHandler} from '../hbone/hbone-engine.js'
import type {NativeContexts} from '../hbone/native-tls.js'
import type {Logger} from '../observe/log.js'
import type {Metrics, TrafficLabels} from '../observe/metrics.js'
import type {ConnectionRecord, ConnectionRegistry} from '../observe/registry.js'
import {identityNameFromSpiffe} from '../state/authz.js'
import type {MeshState} from '../state/state.js'
import type {ConnectionTracker} from './connection.js'

export const HUB_LIMITS = {
  /** sessions (attached agents) at once; more are closed at once */
  maxSessions: 4096,
  /** standby streams one agent may park; more are refused 429 */
  maxStandbyPerAgent: 16,
  /** relays waiting for a standby stream of one destination, and for how long */
  maxWaitingPerAgent: 64,
  waitMs: 5000,
}

export interface HubServerOptions {
  /** the hub's address as agents dial it (logs, `by=`) */
  advertise: () => string
  contexts: NativeContexts
  engine: HboneEngine
  keepaliveIntervalMs?: number
  keepaliveTimeoutMs?: number
  limits?: Partial<typeof HUB_LIMITS>
  logger: () => Logger
  metrics: Metrics
  registry: ConnectionRegistry
  selfSpiffe: () => string
  state: () => MeshState
  tracker: ConnectionTracker
}

interface AttachedAgent {
  connectedAt: number
  id: number
  /** identity name (undefined: not an identity of this mesh; it may attach but cannot relay) */
  name?: string
  relays: number
  remote: string
  serial?: string
  spiffe?: string
  /** standby stream ids, oldest first */
  standby: number[]
}

interface Waiter {
  relayId: number
  source: AttachedAgent
  timer: NodeJS.Timeout
  destination: string
  authority: string
}

/** /hub_status: who is attached and what flows. */
export interface HubStatus {
  agents: {connectedAt: string; name?: string; relays: number; remote: string; rttMs?: number; spiffe?: string; standby: number}[]
  relays: number
  waiting: number
}

export class HubServer {
  private listenerId: number | undefined
  private readonly sessions = new Map<number, AttachedAgent>()
  private readonly waiting = new Map<string, Waiter[]>()
  private readonly limits: typeof HUB_LIMITS
  private readonly options: Required<Omit<HubServerOptions, 'limits'>>
  private draining = false

  constructor(options: HubServerOptions) {
    this.options = {...options, keepaliveIntervalMs: options.keepaliveIntervalMs ?? 5000, keepaliveTimeoutMs: options.keepaliveTimeoutMs ?? 10_000}
    this.limits = {...HUB_LIMITS, ...options.limits}
    options.contexts.on('update', () => {
      if (this.listenerId !== undefined) options.engine.native.listenerSetContext(this.listenerId, options.contexts.server)
    })
  }

  async listen(address: HostPort): Promise<{address: string; port: number}> {
    const {contexts, engine, keepaliveIntervalMs, keepaliveTimeoutMs} = this.options
    const host = await resolveHost(address.host)
    const {id, port} = engine.listenHbone(host, address.port, contexts.server, {intervalMs: keepaliveIntervalMs, timeoutMs: keepaliveTimeoutMs}, HBONE_BOUNDS, {
      sessionReady: (sessionId, peer, remote) => this.onSession(sessionId, peer, remote),
      tlsError: (remote, message) => {
        this.options.metrics.connectionFailed({reporter: 'hub', responseFlags: 'TLS_FAILURE'})
        this.options.logger().warn({scope: 'access', 'src.addr': remote, 'dst.addr': this.options.advertise(), direction: 'relay', error: `TLS handshake failed: ${message}`}, 'connection failed')
      },
    })
    this.listenerId = id
    return {address: host, port}
  }

  status(): HubStatus {
    return {
      agents: [...this.sessions.values()].map((agent) => ({
        connectedAt: new Date(agent.connectedAt).toISOString(), name: agent.name, relays: agent.relays, remote: agent.remote,
        rttMs: this.options.engine.sessionInfo(agent.id)?.rttMs, spiffe: agent.spiffe, standby: agent.standby.length,
      })).sort((a, b) => (a.name ?? '').localeCompare(b.name ?? '')),
      relays: this.options.registry.size,
      waiting: [...this.waiting.values()].reduce((sum, list) => sum + list.length, 0),
    }
  }

  /** After a configuration change: end the sessions of revoked certificates and the relays policy no longer allows. */
  enforce(): void {
    const state = this.options.state()
    for (const agent of this.sessions.values()) if (state.isRevoked(agent.serial)) this.options.engine.native.sessionClose(agent.id, false)
    this.options.registry.closeWhere((record) => {
      if (record.direction !== 'relay') return false
      return !state.reach({agent: record.destinationAgent ?? '', sourceAddress: hostOf(record.sourceAddress), sourceSpiffe: record.sourceSpiffe}).allowed
    }, {flag: 'DENY', message: 'relay closed due to policy change'})
  }

  /** Stop accepting; GOAWAY on every session (open relays continue). */
  drain(): void {
    this.draining = true
    this.closeListener()
    for (const list of this.waiting.values()) for (const waiter of list) this.refuseWaiter(waiter, 503, 'the hub is shutting down')
    for (const id of this.sessions.keys()) this.options.engine.native.sessionClose(id, true)
  }

  destroy(): void {
    this.closeListener()
    for (const id of this.sessions.keys()) this.options.engine.native.sessionClose(id, false)
  }

  private closeListener(): void {
    if (this.listenerId === undefined) return
    this.options.engine.closeListener(this.listenerId)
    this.listenerId = undefined
  }

  private onSession(sessionId: number, peer: PeerCertificateInfo, remote: string): ServerSessionHandler {
    const {engine, logger, state} = this.options
    const agent: AttachedAgent = {
      connectedAt: Date.now(), id: sessionId, name: identityNameFromSpiffe(peer.spiffe, state().self.trustDomain), relays: 0, remote, serial: peer.serial,
      spiffe: peer.spiffe, standby: [],
    }
    const refuseSession = this.draining || this.sessions.size >= this.limits.maxSessions || state().isRevoked(peer.serial)
    this.sessions.set(sessionId, agent)
    if (refuseSession) engine.native.sessionClose(sessionId, this.draining)
    else logger().info({agent: agent.name, component: 'hub', remote, spiffe: agent.spiffe}, 'agent attached')
    return {
      closed: (reason) => {
        this.sessions.delete(sessionId)
        for (const list of this.waiting.values()) for (const waiter of [...list]) if (waiter.source === agent) this.dropWaiter(waiter)
        if (!refuseSession) logger().info({agent: agent.name, component: 'hub', reason}, 'agent detached')
      },
      request: (tunnelId, method, authority, _forwarded, role) => this.onRequest(agent, tunnelId, {authority, method, role}),
    }
  }

  private onRequest(agent: AttachedAgent, tunnelId: number, request: {authority: string; method: string; role?: string}): void {
    const {engine} = this.options
    const target = parseHostPort(request.authority)
    if (request.method !== 'CONNECT' || !target) {
      engine.native.refuse(tunnelId, 400, 'a hub takes CONNECT <agent>:15008 only')
      return
    }

    if (!agent.name) {
      engine.native.refuse(tunnelId, 401, `the certificate carries no identity of trust domain ${this.options.state().self.trustDomain}`)
      return
    }

    if (request.role === 'accept') this.park(agent, tunnelId, target.host)
    else if (request.role === 'relay') this.relay(agent, tunnelId, target.host, request.authority)
    else engine.native.refuse(tunnelId, 400, 'not a hub stream: send ztctl-hub: accept or relay')
  }

  /** A standby stream: held unanswered until a relay for this agent comes. */
  private park(agent: AttachedAgent, tunnelId: number, name: string): void {
    const {engine} = this.options
    if (name !== agent.name) {
      engine.native.refuse(tunnelId, 401, `identity "${agent.name}" cannot take streams for "${name.slice(0, 64)}"`)
      return
    }

    if (agent.standby.length >= this.limits.maxStandbyPerAgent) {
      engine.native.refuse(tunnelId, 429, `at most ${this.limits.maxStandbyPerAgent} standby streams per agent`)
      return
    }

    agent.standby.push(tunnelId)
    engine.watchTunnel(tunnelId, {closed: () => removeFrom(agent.standby, tunnelId)})
    const waiter = this.waiting.get(name)?.[0]
    if (waiter) {
      this.dropWaiter(waiter)
      this.relay(waiter.source, waiter.relayId, waiter.destination, waiter.authority)
    }
  }

  private relay(source: AttachedAgent, relayId: number, destination: string, authority: string): void {
    const {engine, state} = this.options
    const current = state()
    if (current.isRevoked(source.serial)) {
      engine.native.refuse(relayId, 401, `the certificate ${source.serial} is revoked`)
      engine.native.sessionClose(source.id, false)
      return
    }

    if (destination === source.name) {
      engine.native.refuse(relayId, 400, 'a relay to yourself')
      return
    }

    const decision = current.reach({agent: destination, sourceAddress: hostOf(source.remote), sourceSpiffe: source.spiffe})
    const {labels, record} = this.describe(source, destination, authority)
    if (!decision.allowed) {
      engine.native.refuse(relayId, 401, decision.reason)
      this.options.tracker.refused(record, {...labels, responseFlags: 'DENY'}, {flag: 'DENY', message: `relay refused: ${decision.reason}`})
      return
    }

    const attached = [...this.sessions.values()].filter((agent) => agent.name === destination)
    if (attached.length === 0) {
      const reason = `agent "${destination.slice(0, 64)}" is not attached to this hub`
      engine.native.refuse(relayId, 503, reason)
      this.options.tracker.refused(record, {...labels, responseFlags: 'CONNECT'}, {flag: 'CONNECT', message: reason})
      return
    }

    // The destination session with the most standby streams (spreads over an agent's hub connections).
    const target = attached.sort((a, b) => b.standby.length - a.standby.length)[0]!
    const standbyId = target.standby.shift()
    if (standbyId === undefined) {
      this.wait(source, relayId, destination, authority)
      return
    }

    const forwarded = `for="${source.remote}";by="${this.options.selfSpiffe()}"`
    if (!engine.native.splice(relayId, standbyId, [], ['forwarded', forwarded])) {
      // The standby stream was gone (its agent reset it meanwhile): try the next one.
      this.relay(source, relayId, destination, authority)
      return
    }

    record.destinationSpiffe = target.spiffe
    labels.destinationPrincipal = target.spiffe
    source.relays++
    target.relays++
    const finish = this.options.tracker.opened(record, labels, () => engine.native.abort(relayId, 'closed by the hub'))
    engine.watchTunnel(standbyId, {})
    engine.watchTunnel(relayId, {
      closed(fromPlain, toPlain, error) {
        source.relays--
        target.relays--
        finish({fromPlain, toPlain}, error)
      },
    })
  }

  /** No standby stream right now: wait (bounded) for the destination to park another. */
  private wait(source: AttachedAgent, relayId: number, destination: string, authority: string): void {
    const list = this.waiting.get(destination) ?? []
    if (list.length >= this.limits.maxWaitingPerAgent) {
      this.options.engine.native.refuse(relayId, 429, `${list.length} relays already wait for agent "${destination}"`)
      return
    }

    const waiter: Waiter = {
      authority, destination, relayId, source,
      timer: setTimeout(() => this.refuseWaiter(waiter, 503, `agent "${destination}" offered no standby stream within ${this.limits.waitMs} ms`), this.limits.waitMs),
    }
    waiter.timer.unref()
    list.push(waiter)
    this.waiting.set(destination, list)
    this.options.engine.watchTunnel(relayId, {closed: () => this.dropWaiter(waiter)})
  }

  private refuseWaiter(waiter: Waiter, status: number, reason: string): void {
    this.dropWaiter(waiter)
    this.options.engine.native.refuse(waiter.relayId, status, reason)
  }

  private dropWaiter(waiter: Waiter): void {
    clearTimeout(waiter.timer)
    const list = this.waiting.get(waiter.destination)
    if (!list) return
    removeFrom(list, waiter)
    if (list.length === 0) this.waiting.delete(waiter.destination)
  }

  private describe(source: AttachedAgent, destination: string, authority: string): {labels: TrafficLabels; record: ConnectionRecord} {
    const record: ConnectionRecord = {
      destinationAddress: this.options.advertise(),
      destinationAgent: destination,
      destinationSpiffe: undefined,
      direction: 'relay',
      hboneTarget: authority.slice(0, 300),
      id: this.options.tracker.newId(),
      peerSerial: source.serial,
      service: 'hub',
      sourceAddress: source.remote,
      sourceSpiffe: source.spiffe,
      startedAt: Date.now(),
    }
    const labels: TrafficLabels = {
      destinationPrincipal: undefined,
      destinationService: undefined,
      destinationWorkload: destination,
      reporter: 'hub',
      sourcePrincipal: source.spiffe,
      sourceWorkload: source.name,
    }
    return {labels, record}
  }
}

function removeFrom<T>(list: T[], item: T): void {
  const index = list.indexOf(item)
  if (index >= 0) list.splice(index, 1)
}

/** `1.2.3.4:5` / `[::1]:5` → the address. */
function hostOf(remote: string): string {
  return parseHostPort(remote)?.host ?? remote
}


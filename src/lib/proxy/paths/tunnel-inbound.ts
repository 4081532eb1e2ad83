// Inbound tunnels: a local TCP listener per tunnel this agent hosts; each accepted connection goes to
// one endpoint (hosting agent, target) of the service — weighted random, failing over to another on a
// connect failure — as an HBONE CONNECT for that target sent to that agent (ztunnel's pod routing).
// Either data path: node:net + the node:http2 pool, or the native one (the addon accepts and relays).
import {randomFillSync} from 'node:crypto'
import {createServer, type AddressInfo, type Socket} from 'node:net'

import type {InboundTunnel} from '../../config/types.js'
import {resourceKey} from '../../config/types.js'
import {describeSystemError} from '../../errors.js'
import {formatHostPort, type HostPort, normalizeIp, parseHostPort, resolveHost} from '../address.js'
import type {ConnectionTracker} from './connection.js'
import type {HboneEngine} from '../hbone/hbone-engine.js'
import type {HboneError, HbonePool} from '../hbone/hbone-pool.js'
import type {HboneDestination} from '../hbone/pool-sessions.js'
import type {Logger} from '../observe/log.js'
import type {TrafficLabels} from '../observe/metrics.js'
import type {ConnectionRecord} from '../observe/registry.js'
import type {NativeHbonePool} from '../hbone/native-pool.js'
import type {MeshState} from '../state/state.js'

/** Endpoints tried per connection before giving up. */
export const MAX_CONNECT_ATTEMPTS = 3

export interface InboundListenerInfo {
  /** the bound address (the real port when 0 was asked for) */
  address?: string
  /** why it is not bound, and the system's code for it (EADDRINUSE, EACCES, …) */
  error?: string
  errorCode?: string
  key: string
  listen: string
  service: string
}

/** A bound listener of either data path. */
interface BoundListener {
  address: string
  close(): void
}

interface Listener {
  bound?: BoundListener
  info: InboundListenerInfo
  tunnel: InboundTunnel
}

export interface CarryOptions {
  logger: () => Logger
  sourceSpiffe: () => string
  state: () => MeshState
  tracker: ConnectionTracker
}

export interface InboundOptions extends CarryOptions {
  /** the node:http2 pool, or the native engine and its pool */
  dataPath: {kind: 'node'; pool: HbonePool} | {engine: HboneEngine; kind: 'native'; pool: NativeHbonePool}
}

/**
 * The application side of one tunnel, whichever data path holds its socket: `open` sends the CONNECT
 * (resolving once answered 200, or undefined when the client already left), `track` starts the relay
 * and its accounting, `destroy` gives up.
 */
export interface TunnelClient {
  destroy(): void
  open(destination: HboneDestination, target: string, headers: Record<string, string>): Promise<undefined | {peerSerial?: string; track(record: ConnectionRecord, labels: TrafficLabels): void}>
  /** `ip:port` of the application */
  readonly source: string
}

/** Endpoints in a weighted-random order without repetition (the first is the weighted pick). */
export function weightedOrder<T extends {weight: number}>(endpoints: readonly T[], random: () => number = Math.random): T[] {
  if (endpoints.length < 2) return [...endpoints]
  const remaining = [...endpoints]
  const order: T[] = []
  while (remaining.length > 0) {
    const total = remaining.reduce((sum, endpoint) => sum + endpoint.weight, 0)
    let pick = random() * total
    let index = remaining.findIndex((endpoint) => (pick -= endpoint.weight) < 0)
    if (index < 0) index = remaining.length - 1
    order.push(...remaining.splice(index, 1))
  }

  return order
}

export class InboundTunnels {
  private readonly listeners = new Map<string, Listener>()
  private accepting = true

  constructor(private readonly options: InboundOptions) {}

  /**
   * Open, re-bind or close listeners to match TUNNELS, each on its own: one that cannot bind keeps its
   * error (list() shows it) and is tried again by the next apply; the others are unaffected.
   */
  async apply(tunnels: readonly InboundTunnel[]): Promise<void> {
    const wanted = new Map(tunnels.map((tunnel) => [resourceKey('inbound', tunnel), tunnel]))
    for (const [key, listener] of this.listeners) {
      const next = wanted.get(key)
      if (!next || next.listen !== listener.tunnel.listen) {
        listener.bound?.close()
        this.listeners.delete(key)
      } else {
        listener.tunnel = next
      }
    }

    for (const [key, tunnel] of wanted) {
      const previous = this.listeners.get(key)
      if (previous?.bound || !this.accepting) continue
      const listener: Listener = {info: {key, listen: tunnel.listen, service: tunnel.service}, tunnel}
      this.listeners.set(key, listener)
      try {
        await this.bind(listener)
      } catch (error) {
        listener.info.error = `cannot listen on ${tunnel.listen} for ${tunnel.service}: ${describeSystemError(error)}`
        listener.info.errorCode = (error as NodeJS.ErrnoException).code
        // A retry that fails the same way says nothing new.
        if (previous?.info.error !== listener.info.error) this.options.logger().error({tunnel: key}, listener.info.error)
      }
    }
  }

  /** Some listener could not bind (apply tries it again). */
  get failing(): boolean {
    for (const listener of this.listeners.values()) if (!listener.bound) return true
    return false
  }

  list(): InboundListenerInfo[] {
    return [...this.listeners.values()].map((listener) => ({...listener.info}))
  }

  /** Stop accepting (drain); established connections continue. */
  close(): void {
    this.accepting = false
    for (const listener of this.listeners.values()) listener.bound?.close()
    this.listeners.clear()
  }

  private async bind(listener: Listener): Promise<void> {
    const address = parseHostPort(listener.tunnel.listen, '127.0.0.1')!
    const {dataPath, tracker} = this.options
    listener.bound =
      dataPath.kind === 'native'
        ? await listenNative(dataPath.engine, address, (tunnelId, remote) => carryToService(nativeClient(dataPath.engine, dataPath.pool, tracker, tunnelId, remote), listener.tunnel.service, this.options))
        : await listenNode(address, (socket) => carryToService(socketClient(socket, dataPath.pool, tracker), listener.tunnel.service, this.options), (error) =>
            this.options.logger().error({tunnel: listener.info.key, error: error.message}, 'inbound listener error'),
          )
    listener.info.address = listener.bound.address
    this.options.logger().info({address: listener.info.address, component: 'inbound', service: listener.tunnel.service}, 'listener established')
  }
}

async function listenNode(address: HostPort, onSocket: (socket: Socket) => void, onError: (error: Error) => void): Promise<BoundListener> {
  const server = createServer({allowHalfOpen: true, noDelay: true, pauseOnConnect: true}, onSocket)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(address.port, address.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  server.on('error', onError)
  const bound = server.address() as AddressInfo
  return {address: formatHostPort({host: bound.address, port: bound.port}), close: () => server.close()}
}

async function listenNative(engine: HboneEngine, address: HostPort, onAccept: (tunnelId: number, remote: string) => void): Promise<BoundListener> {
  const host = await resolveHost(address.host)
  const {id, port} = engine.listenPlain(host, address.port, onAccept)
  return {address: formatHostPort({host, port}), close: () => engine.closeListener(id)}
}

/** A socket accepted by node:net (paused until established), carried over the node:http2 pool. */
export function socketClient(socket: Socket, pool: HbonePool, tracker: ConnectionTracker): TunnelClient {
  // Paused until established (pauseOnConnect), so the socket reports nothing but errors: `destroyed`
  // tells whether the client went away meanwhile. The relay brings its own error listener.
  socket.on('error', ignoreError)
  return {
    destroy: () => socket.destroy(),
    async open(destination, target, headers) {
      const {peerSerial, stream} = await pool.open(destination, target, headers)
      if (socket.destroyed) {
        stream.close()
        return undefined
      }

      socket.off('error', ignoreError)
      return {peerSerial, track: (record, labels) => tracker.established(record, labels, socket, stream)}
    },
    source: `${normalizeIp(socket.remoteAddress)}:${socket.remotePort}`,
  }
}

/** A socket the addon accepted (TUNNEL_ID), carried over the native pool; the addon relays it. */
function nativeClient(engine: HboneEngine, pool: NativeHbonePool, tracker: ConnectionTracker, tunnelId: number, remote: string): TunnelClient {
  return {
    destroy: () => engine.native.abort(tunnelId, 'refused'),
    async open(destination, target, headers) {
      const opened = await pool.open(tunnelId, destination, target, Object.entries(headers).flat())
      return {
        peerSerial: opened.peerSerial,
        track(record, labels) {
          const finish = tracker.opened(record, labels, () => engine.native.abort(tunnelId, 'closed by the agent'))
          opened.onClosed((fromPlain, toPlain, error) => finish({fromPlain, toPlain}, error))
        },
      }
    },
    source: remote,
  }
}

/**
 * Carry one accepted connection to an endpoint of SERVICE over HBONE (weighted pick, failover on connect
 * failures). Also used by the in-pod data path for connections to a mesh service address, with the
 * pod's pool and identity (SOURCE_WORKLOAD: the pod's name in the metrics).
 */
export function carryToService(client: TunnelClient, service: string, options: CarryOptions, sourceWorkload?: string): void {
  const state = options.state()
  const sourceSpiffe = options.sourceSpiffe()
  // Every field spelled out from the start: the objects keep one shape instead of growing per endpoint.
  const record: ConnectionRecord = {
    destinationAddress: '',
    destinationAgent: undefined,
    destinationSpiffe: undefined,
    direction: 'outbound',
    hboneTarget: '',
    id: options.tracker.newId(),
    peerSerial: undefined,
    service,
    sourceAddress: client.source,
    sourceSpiffe,
    startedAt: Date.now(),
  }
  const labels: TrafficLabels = {
    destinationPrincipal: undefined,
    destinationService: service,
    destinationWorkload: undefined,
    reporter: 'source',
    sourcePrincipal: sourceSpiffe,
    sourceWorkload: sourceWorkload ?? state.self.name,
  }
  const endpoints = weightedOrder(state.endpoints(service)).slice(0, MAX_CONNECT_ATTEMPTS)
  if (endpoints.length === 0) {
    client.destroy()
    options.tracker.refused(record, labels, {flag: 'CONNECT', message: `no healthy upstream: ${service} has no endpoints (no agent hosts it, or its agent has not registered)`})
    return
  }

  const attempt = async (): Promise<void> => {
    let lastError: HboneError | undefined
    for (const endpoint of endpoints) {
      record.destinationAddress = endpoint.hbone
      record.destinationAgent = endpoint.agent
      record.destinationSpiffe = endpoint.spiffe
      record.hboneTarget = endpoint.target
      labels.destinationPrincipal = endpoint.spiffe
      labels.destinationWorkload = endpoint.agent
      try {
        const opened = await client.open({address: endpoint.hbone, spiffe: endpoint.spiffe}, endpoint.target, requestHeaders(record, service))
        if (!opened) return // the client left meanwhile
        record.peerSerial = opened.peerSerial
        opened.track(record, labels)
        return
      } catch (error) {
        lastError = error as HboneError
        options.logger().debug({endpoint: endpoint.target, agent: endpoint.agent, error: lastError.message}, 'endpoint failed')
        if (!lastError.retryable) break
      }
    }

    client.destroy()
    options.tracker.refused(record, labels, {flag: lastError?.flag ?? 'CONNECT', message: lastError?.message ?? 'connection failed'})
  }

  void attempt()
}

function ignoreError(): void {}

// Trace ids come from a pool refilled in bulk: one getrandom call per 170 connections, not one each.
const randomPool = Buffer.alloc(4096)
let randomOffset = randomPool.length

function randomHex(bytes: number): string {
  if (randomOffset + bytes > randomPool.length) {
    randomFillSync(randomPool)
    randomOffset = 0
  }

  randomOffset += bytes
  return randomPool.toString('hex', randomOffset - bytes, randomOffset)
}

/** ztunnel's CONNECT headers: who the client is, which service, and a fresh W3C trace context. */
function requestHeaders(record: ConnectionRecord, service: string): Record<string, string> {
  const trace = randomHex(24)
  return {
    baggage: `service.name=${service}`,
    forwarded: `for="${record.sourceAddress}";host="${service}"`,
    traceparent: `00-${trace.slice(0, 32)}-${trace.slice(32, 48)}-00`,
  }
}

// Inbound tunnels: a local TCP listener per tunnel this agent hosts; each accepted connection goes to
// one endpoint (hosting agent, target) of the service — weighted random, failing over to another on a
// connect failure — as an HBONE CONNECT for that target sent to that agent (ztunnel's pod routing). An
// agent with no HBONE address is reached through a hub; one with an address is tried directly first,
// then through a hub when the direct dial fails. Either data path: node:net + the node:http2 pool, or
// the native one (the addon accepts and relays; hubs need it).
import {createServer, type AddressInfo, type Socket} from 'node:net'

import type {InboundTunnel} from '../../config/types.js'
import {resourceKey} from '../../config/types.js'
import {describeSystemError} from '../../errors.js'
import {listening} from '../../util/listening.js'
import {formatHostPort, type HostPort, normalizeIp, parseHostPort, resolveHost} from '../address.js'
import type {HboneEngine} from '../hbone/hbone-engine.js'
import type {HbonePool} from '../hbone/hbone-pool.js'
import type {NativeHbonePool} from '../hbone/native-pool.js'
import {type CarryOptions, carryToService, type TunnelClient} from './carry.js'
import type {ConnectionTracker} from './connection.js'
import {UdpInbound, type UdpCounters} from './tunnel-udp.js'

export interface InboundListenerInfo {
  /** the bound address (the real port when 0 was asked for) */
  address?: string
  /** why it is not bound, and the system's code for it (EADDRINUSE, EACCES, …) */
  error?: string
  errorCode?: string
  key: string
  listen: string
  service: string
  /** `udp/` tunnels: datagrams, drops, flows */
  udp?: UdpCounters
}

/** A bound listener of either data path. */
interface BoundListener {
  address: string
  close(): void
  udp?: UdpCounters
}

interface Listener {
  bound?: BoundListener
  info: InboundListenerInfo
  tunnel: InboundTunnel
}

export interface InboundOptions extends CarryOptions {
  /** the node:http2 pool, or the native engine and its pool */
  dataPath: {kind: 'node'; pool: HbonePool} | {engine: HboneEngine; kind: 'native'; pool: NativeHbonePool}
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
    return [...this.listeners.values()].map((listener) => ({...listener.info, udp: listener.bound?.udp && {...listener.bound.udp}}))
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
    if (listener.tunnel.service.startsWith('udp/')) {
      if (dataPath.kind !== 'native') throw new Error('udp tunnels need the native data path (--data-path native)')
      const onError = (error: Error): void => this.options.logger().error({tunnel: listener.info.key, error: error.message}, 'udp listener error')
      const udp = await UdpInbound.listen(address, listener.tunnel, {...this.options, engine: dataPath.engine, pool: dataPath.pool}, onError)
      listener.bound = {address: udp.address, close: udp.close, udp: udp.inbound.counters}
      listener.info.address = udp.address
      this.options.logger().info({address: udp.address, component: 'inbound', service: listener.tunnel.service}, 'listener established')
      return
    }

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
  await listening(server, (done) => server.listen(address.port, address.host, done))
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
export function nativeClient(engine: HboneEngine, pool: NativeHbonePool, tracker: ConnectionTracker, tunnelId: number, remote: string): TunnelClient {
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

function ignoreError(): void {}

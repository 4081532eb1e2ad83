// UDP tunnels (`tunnel open inbound|outbound udp/NAME`): datagrams ride HBONE streams, each as a 2-byte
// big-endian length and the payload (docs/hbone.md "UDP"). The entry keeps one stream per flow (one
// client address) and ends it after `idleTimeout` seconds without a datagram either way; the exit holds
// one connected UDP socket per stream. Nothing waits unbounded: a flow's datagrams queue while its
// stream opens (16 of them, 64 KiB) and are dropped past that, a stream whose socket already holds
// 256 KiB unsent drops the datagram too (UDP semantics: late is as good as lost), so does a UDP socket
// whose send queue holds 256 KiB, flows per listener are capped. The framing is read with a state
// machine over a buffer one frame deep.
import {createSocket, type RemoteInfo, type Socket as UdpSocket} from 'node:dgram'
import {isIP, Socket} from 'node:net'

import type {InboundTunnel} from '../../config/types.js'
import {listening} from '../../util/listening.js'
import {formatHostPort, type HostPort, normalizeIp} from '../address.js'
import type {HboneEngine} from '../hbone/hbone-engine.js'
import type {NativeHbonePool} from '../hbone/native-pool.js'
import type {Logger} from '../observe/log.js'
import type {ConnectionTracker} from './connection.js'
import {type CarryOptions, carryToService, type TunnelClient} from './carry.js'

/** The largest datagram a frame carries (the 2-byte length's range). */
export const MAX_DATAGRAM = 65_535
export const DEFAULT_UDP_IDLE_SECONDS = 30
/** The exit ends a stream that carried nothing for this long (the entry's own idle timeout ends it first). */
export const EXIT_IDLE_MS = 5 * 60_000
export const UDP_LIMITS = {
  /** flows (client addresses) one listener carries at once; datagrams of more are dropped */
  maxFlows: 1024,
  /** datagrams (and bytes) held per flow while its stream opens */
  maxQueued: 16,
  maxQueuedBytes: 64 * 1024,
  /** bytes written to a stream and not yet taken by the engine; more datagrams are dropped */
  maxUnsent: 256 * 1024,
  /** bytes a UDP socket may queue in Node when the kernel's buffer is full (a peer sending faster than
   *  the target or the client reads); more datagrams are dropped */
  maxSendQueue: 256 * 1024,
}

/**
 * Reads length-prefixed datagrams from a byte stream. State: the chunks of one partial frame (at most
 * 2 + 65,535 bytes), how many bytes they hold, and the frame's size once its prefix is in; the chunks
 * are joined once, when the frame is complete.
 */
export class DatagramReader {
  private parts: Buffer[] = []
  private held = 0
  /** the partial frame's size (prefix included); 0 until its 2-byte prefix arrived */
  private frame = 0

  /** The whole datagrams CHUNK completes. */
  push(chunk: Buffer): Buffer[] {
    const datagrams: Buffer[] = []
    let data = chunk
    if (this.held > 0) {
      this.parts.push(chunk)
      this.held += chunk.length
      if (this.frame === 0 && this.held >= 2) this.frame = 2 + Buffer.concat(this.parts, 2).readUInt16BE(0)
      if (this.frame === 0 || this.held < this.frame) return datagrams
      data = Buffer.concat(this.parts)
      this.parts = []
      this.held = 0
      this.frame = 0
    }

    let offset = 0
    while (data.length - offset >= 2) {
      const length = data.readUInt16BE(offset)
      if (data.length - offset - 2 < length) break
      datagrams.push(data.subarray(offset + 2, offset + 2 + length))
      offset += 2 + length
    }

    if (offset < data.length) {
      this.parts = [Buffer.from(data.subarray(offset))]
      this.held = data.length - offset
      this.frame = this.held >= 2 ? 2 + this.parts[0]!.readUInt16BE(0) : 0
    }

    return datagrams
  }
}

export function frameDatagram(payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(2 + payload.length)
  frame.writeUInt16BE(payload.length, 0)
  payload.copy(frame, 2)
  return frame
}

/** What a listener reports (config_dump, tests). */
export interface UdpCounters {
  /** datagrams from clients, and back to them */
  datagramsIn: number
  datagramsOut: number
  /** datagrams dropped: a full queue, a full stream, too many flows */
  dropped: number
  flows: number
  /** the most bytes any flow held at once (queued while opening, or unsent on its stream) */
  peakBuffered: number
}

export interface UdpInboundOptions extends CarryOptions {
  engine: HboneEngine
  pool: NativeHbonePool
}

interface Flow {
  idle?: NodeJS.Timeout
  key: string
  /** our end of the flow's socketpair (its stream may still be opening) */
  pair?: Socket
  queued: Buffer[]
  queuedBytes: number
  remote: RemoteInfo
  /** the pair once its stream answered 200 */
  socket?: Socket
}

/** One `udp/` inbound tunnel's listener: a UDP socket, one HBONE stream per client address. */
export class UdpInbound {
  readonly counters: UdpCounters = {datagramsIn: 0, datagramsOut: 0, dropped: 0, flows: 0, peakBuffered: 0}
  private readonly flows = new Map<string, Flow>()
  private readonly idleMs: number

  private constructor(
    private readonly socket: UdpSocket,
    private readonly tunnel: InboundTunnel,
    private readonly options: UdpInboundOptions,
  ) {
    this.idleMs = (tunnel.idleTimeout ?? DEFAULT_UDP_IDLE_SECONDS) * 1000
    socket.on('message', (message, remote) => this.onDatagram(message, remote))
  }

  static async listen(address: HostPort, tunnel: InboundTunnel, options: UdpInboundOptions, onError: (error: Error) => void): Promise<{address: string; close(): void; inbound: UdpInbound}> {
    const socket = createSocket({reuseAddr: false, type: isIP(address.host) === 6 ? 'udp6' : 'udp4'})
    await listening(socket, (done) => socket.bind(address.port, address.host, done))
    socket.on('error', onError)
    const inbound = new UdpInbound(socket, tunnel, options)
    const bound = socket.address()
    return {address: formatHostPort({host: bound.address, port: bound.port}), close: () => inbound.close(), inbound}
  }

  close(): void {
    for (const flow of this.flows.values()) this.endFlow(flow)
    this.socket.close()
  }

  private onDatagram(message: Buffer, remote: RemoteInfo): void {
    this.counters.datagramsIn++
    const key = `${remote.address}:${remote.port}`
    let flow = this.flows.get(key)
    if (!flow) {
      if (this.flows.size >= UDP_LIMITS.maxFlows) {
        this.counters.dropped++
        return
      }

      flow = this.openFlow(key, remote)
    }

    this.touch(flow)
    if (flow.socket) {
      this.send(flow.socket, message)
    } else if (flow.queued.length < UDP_LIMITS.maxQueued && flow.queuedBytes + message.length <= UDP_LIMITS.maxQueuedBytes) {
      flow.queued.push(message)
      flow.queuedBytes += message.length
      this.counters.peakBuffered = Math.max(this.counters.peakBuffered, flow.queuedBytes)
    } else {
      this.counters.dropped++
    }
  }

  private send(socket: Socket, message: Buffer): void {
    if (socket.writableLength + message.length + 2 > UDP_LIMITS.maxUnsent || socket.destroyed) {
      this.counters.dropped++
      return
    }

    socket.write(frameDatagram(message))
    this.counters.peakBuffered = Math.max(this.counters.peakBuffered, socket.writableLength)
  }

  private openFlow(key: string, remote: RemoteInfo): Flow {
    const flow: Flow = {key, queued: [], queuedBytes: 0, remote}
    this.flows.set(key, flow)
    this.counters.flows = this.flows.size
    const {engine, pool, tracker} = this.options
    const [tunnelId, fd] = engine.native.pair()
    const socket = new Socket({allowHalfOpen: true, fd, readable: true, writable: true})
    socket.on('error', () => this.endFlow(flow))
    socket.once('close', () => this.forget(flow))
    const client: TunnelClient = {
      destroy: () => {
        engine.native.abort(tunnelId, 'no endpoint')
        this.endFlow(flow)
      },
      open: async (destination, target, headers) => {
        const opened = await pool.open(tunnelId, destination, target, Object.entries(headers).flat())
        return {
          peerSerial: opened.peerSerial,
          track: (record, labels) => {
            trackPair(tracker, engine, tunnelId, opened, record, labels)
            // The stream is up: what waited goes now, later datagrams go straight to it.
            flow.socket = socket
            for (const message of flow.queued) this.send(socket, message)
            flow.queued = []
            flow.queuedBytes = 0
          },
        }
      },
      source: `${normalizeIp(remote.address)}:${remote.port}`,
    }
    const reader = new DatagramReader()
    socket.on('data', (chunk: Buffer) => {
      for (const datagram of reader.push(chunk)) {
        this.touch(flow)
        if (this.socket.getSendQueueSize() + datagram.length > UDP_LIMITS.maxSendQueue) {
          this.counters.dropped++
          continue
        }

        this.counters.datagramsOut++
        this.socket.send(datagram, remote.port, remote.address)
      }
    })
    flow.pair = socket
    carryToService(client, this.tunnel.service, this.options)
    return flow
  }

  private touch(flow: Flow): void {
    if (flow.idle) flow.idle.refresh()
    else {
      flow.idle = setTimeout(() => this.endFlow(flow), this.idleMs)
      flow.idle.unref()
    }
  }

  /** An idle or failed flow: FIN on its stream (END_STREAM), then it is forgotten. */
  private endFlow(flow: Flow): void {
    clearTimeout(flow.idle)
    flow.queued = []
    if (flow.pair && !flow.pair.destroyed) {
      flow.pair.end()
      flow.pair.destroySoon()
    }

    this.forget(flow)
  }

  private forget(flow: Flow): void {
    if (this.flows.get(flow.key) === flow) this.flows.delete(flow.key)
    this.counters.flows = this.flows.size
  }
}

/** Account a socketpair tunnel like any other: registry, metrics, access log at close. */
function trackPair(tracker: ConnectionTracker, engine: HboneEngine, tunnelId: number, opened: Awaited<ReturnType<NativeHbonePool['open']>>, record: Parameters<ConnectionTracker['opened']>[0], labels: Parameters<ConnectionTracker['opened']>[1]): void {
  const finish = tracker.opened(record, labels, () => engine.native.abort(tunnelId, 'closed by the agent'))
  opened.onClosed((fromPlain, toPlain, error) => finish({fromPlain, toPlain}, error))
}

/**
 * The exit end of one UDP stream: SOCKET is the stream (a socketpair the addon relays), TARGET the
 * resolved address; datagrams go out of one connected UDP socket and its answers come back framed.
 * Returns what ends it (the stream closed, a policy change, drain); it also ends after EXIT_IDLE_MS idle.
 */
export function serveUdpExit(socket: Socket, target: HostPort, logger: () => Logger): () => void {
  const udp = createSocket(isIP(target.host) === 6 ? 'udp6' : 'udp4')
  const reader = new DatagramReader()
  let finished = false
  const end = (): void => {
    if (finished) return
    finished = true
    clearTimeout(idle)
    udp.close()
    socket.end()
    socket.destroySoon()
  }

  const idle = setTimeout(end, EXIT_IDLE_MS)
  idle.unref()
  udp.on('error', (error) => logger().debug({error: error.message, target: formatHostPort(target)}, 'udp exit socket error'))
  socket.on('error', end)
  socket.once('end', end)
  socket.once('close', end)
  // The stream is read only once the UDP socket is connected (a datagram has nowhere to go before).
  udp.connect(target.port, target.host, () => {
    udp.on('message', (message) => {
      idle.refresh()
      if (socket.writableLength + message.length + 2 <= UDP_LIMITS.maxUnsent) socket.write(frameDatagram(message))
    })
    socket.on('data', (chunk: Buffer) => {
      for (const datagram of reader.push(chunk)) {
        idle.refresh()
        if (udp.getSendQueueSize() + datagram.length <= UDP_LIMITS.maxSendQueue) udp.send(datagram)
      }
    })
  })
  return end
}

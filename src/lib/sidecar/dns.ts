// The sidecar's DNS server (UDP and TCP on one port: 127.0.0.1:53 in tproxy mode, 127.0.0.1:15053 inside
// each redirected pod, on sockets the in-pod agent creates in the pod's netns): intercepted service
// host names get an authoritative A record with their 100.64.0.0/10 address (AAAA and other types: an
// empty NOERROR, so clients fall back to IPv4); every other question is forwarded to the upstream
// resolver, with a bounded in-flight table and a timeout — SERVFAIL when the upstream fails, REFUSED when
// there is none (the stub resolver then tries its next nameserver, as with OpenZiti).
import {createSocket, type RemoteInfo, type Socket as UdpSocket} from 'node:dgram'
import {readFile} from 'node:fs/promises'
import {connect, createServer, isIP, type Server, type Socket} from 'node:net'

import {ExitCode, ZtError, describeSystemError} from '../errors.js'
import {formatHostPort, type HostPort, parseHostPort} from '../proxy/address.js'
import type {Logger} from '../proxy/observe/log.js'
import {listening} from '../util/listening.js'
import {canonicalName} from './addresses.js'
import {buildHeaderOnlyError, buildResponse, type DnsQuery, parseQuery, QCLASS_IN, QTYPE, RCODE, withId} from './dns-wire.js'

export const DEFAULT_UPSTREAM_TIMEOUT_MS = 2000
export const DEFAULT_MAX_IN_FLIGHT = 1024
/** Queries one TCP client may have outstanding; more is abuse, and the connection is closed. */
const MAX_PENDING_PER_TCP_CONNECTION = 32
const MAX_TCP_CONNECTIONS = 256
const TCP_IDLE_TIMEOUT_MS = 10_000
const ANSWER_TTL_SECONDS = 60
/** A DNS message over TCP is at most 65535 bytes (2-byte length prefix), so the frame buffer is bounded. */
const MAX_TCP_FRAME_BYTES = 65_535

/** How the server reaches its upstream; the default makes plain sockets in this process's namespace. */
export interface UpstreamSockets {
  /** the UDP socket for queries forwarded to UPSTREAM (bound, or binding: sends queue until it is) */
  udp(upstream: HostPort): UdpSocket
  /** a TCP connection to UPSTREAM, connecting */
  tcp(upstream: HostPort): Socket
}

const defaultUpstreamSockets: UpstreamSockets = {
  tcp: (upstream) => connect({host: upstream.host, noDelay: true, port: upstream.port}),
  udp: (upstream) => createSocket({type: isIP(upstream.host) === 6 ? 'udp6' : 'udp4'}),
}

export interface DnsServerOptions {
  listen: HostPort
  /** adopt these bound sockets (UDP fd, listening TCP fd; e.g. made inside a pod's netns) instead of binding `listen` */
  listenFds?: {tcp: number; udp: number}
  logger?: Pick<Logger, 'debug' | 'warn'>
  maxInFlight?: number
  /** name → IPv4 address of the intercepted names */
  records?: ReadonlyMap<string, string>
  timeoutMs?: number
  /** where other names go; undefined: answer REFUSED */
  upstream?: HostPort
  upstreamSockets?: UpstreamSockets
}

export interface DnsServerStats {
  answered: number
  forwarded: number
  inFlight: number
  malformed: number
  upstreamFailures: number
}

type Reply = (message: Buffer) => void

interface PendingQuery {
  originalId: number
  reply: Reply
  timer: NodeJS.Timeout
}

export class DnsServer {
  private records: ReadonlyMap<string, string>
  private udp?: UdpSocket
  private tcp?: Server
  private upstreamSocket?: UdpSocket
  private readonly pending = new Map<number, PendingQuery>()
  private readonly tcpClients = new Set<Socket>()
  private closed = false
  readonly stats: DnsServerStats = {answered: 0, forwarded: 0, inFlight: 0, malformed: 0, upstreamFailures: 0}
  /** the bound address (the real port when 0 was asked for) */
  address?: HostPort

  constructor(private readonly options: DnsServerOptions) {
    this.records = options.records ?? new Map()
  }

  /** Replace the intercepted names (after a configuration change). */
  setRecords(records: ReadonlyMap<string, string>): void {
    this.records = records
  }

  async start(): Promise<HostPort> {
    // With port 0, UDP picks the port and TCP must get the same one; another process may take it in
    // between, so a few fresh tries.
    const attempts = this.options.listen.port === 0 ? 5 : 1
    for (let attempt = 1; ; attempt++) {
      try {
        this.address = await this.bind()
        break
      } catch (error) {
        this.closeListeners()
        if (attempt < attempts && (error as NodeJS.ErrnoException).code === 'EADDRINUSE') continue
        throw new ZtError('ZT_ERR_DNS_LISTEN', `cannot serve DNS on ${formatHostPort(this.options.listen)}: ${describeSystemError(error)}`, {
          cause: error,
          exit: ExitCode.conflict,
          suggestion: 'stop whatever else answers DNS there, or pick another --dns-listen address (binding port 53 needs root or CAP_NET_BIND_SERVICE)',
        })
      }
    }

    if (this.options.upstream) {
      this.upstreamSocket = (this.options.upstreamSockets ?? defaultUpstreamSockets).udp(this.options.upstream)
      this.upstreamSocket.on('message', (message, remote) => this.onUpstreamDatagram(message, remote))
      this.upstreamSocket.on('error', (error) => this.options.logger?.warn({component: 'dns', error: error.message}, 'DNS upstream socket error'))
    }

    return this.address
  }

  close(): void {
    this.closed = true
    for (const entry of this.pending.values()) clearTimeout(entry.timer)
    this.pending.clear()
    for (const socket of this.tcpClients) socket.destroy()
    this.closeListeners()
    this.upstreamSocket?.close()
    this.upstreamSocket = undefined
  }

  private async bind(): Promise<HostPort> {
    const {host, port} = this.options.listen
    const udp = createSocket({type: isIP(host) === 6 ? 'udp6' : 'udp4'})
    this.udp = udp
    udp.on('message', (message, remote) => this.onDatagram(message, remote))
    const fds = this.options.listenFds
    await listening(udp, (done) => (fds ? udp.bind({fd: fds.udp}, done) : udp.bind(port, host, done)))
    udp.on('error', (error) => this.options.logger?.warn({component: 'dns', error: error.message}, 'DNS UDP socket error'))
    const boundPort = udp.address().port
    const tcp = createServer({noDelay: true}, (socket) => this.onTcpClient(socket))
    this.tcp = tcp
    tcp.maxConnections = MAX_TCP_CONNECTIONS
    await listening(tcp, (done) => (fds ? tcp.listen({fd: fds.tcp}, done) : tcp.listen(boundPort, host, done)))
    return {host, port: boundPort}
  }

  private closeListeners(): void {
    this.udp?.close()
    this.tcp?.close()
    this.udp = undefined
    this.tcp = undefined
  }

  // ---- one query, whatever the transport ----

  /** Answer MESSAGE through REPLY; TRANSPORT says how to forward it. */
  private handle(message: Buffer, reply: Reply, transport: 'tcp' | 'udp'): void {
    const parsed = parseQuery(message)
    if (!parsed.ok) {
      this.stats.malformed++
      this.options.logger?.debug({component: 'dns', reason: parsed.reason}, 'DNS query refused')
      if (parsed.id !== undefined) reply(buildHeaderOnlyError(parsed.id, parsed.rcode))
      return
    }

    const {query} = parsed
    const address = this.records.get(canonicalName(query.question.name))
    if (address !== undefined && (query.question.qclass === QCLASS_IN || query.question.qclass === QTYPE.any)) {
      const wantsA = query.question.qtype === QTYPE.a || query.question.qtype === QTYPE.any
      this.stats.answered++
      reply(buildResponse(query, {addresses: wantsA ? [address] : [], authoritative: true, rcode: RCODE.noError, ttl: ANSWER_TTL_SECONDS}))
      return
    }

    if (!this.options.upstream) {
      reply(buildResponse(query, {rcode: RCODE.refused}))
      return
    }

    if (this.stats.inFlight >= (this.options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT)) {
      this.stats.upstreamFailures++
      reply(buildResponse(query, {rcode: RCODE.servFail}))
      return
    }

    this.stats.forwarded++
    if (transport === 'udp') this.forwardUdp(message, query, reply)
    else this.forwardTcp(message, query, reply)
  }

  // ---- UDP ----

  private onDatagram(message: Buffer, remote: RemoteInfo): void {
    this.handle(message, (response) => this.udp?.send(response, remote.port, remote.address), 'udp')
  }

  private forwardUdp(message: Buffer, query: DnsQuery, reply: Reply): void {
    const id = this.freeId()
    const upstream = this.options.upstream!
    if (id === undefined || !this.upstreamSocket) {
      this.fail(query, reply)
      return
    }

    const timer = setTimeout(() => {
      if (this.pending.delete(id)) this.settle(() => this.fail(query, reply))
    }, this.options.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS).unref()
    this.pending.set(id, {originalId: query.id, reply, timer})
    this.stats.inFlight++
    this.upstreamSocket.send(withId(message, id), upstream.port, upstream.host, (error) => {
      if (error && this.pending.delete(id)) {
        clearTimeout(timer)
        this.settle(() => this.fail(query, reply))
      }
    })
  }

  /** A random ID not in flight (random, so an off-path attacker cannot guess it); bounded tries. */
  private freeId(): number | undefined {
    for (let tries = 0; tries < 64; tries++) {
      const id = Math.floor(Math.random() * 0x1_0000)
      if (!this.pending.has(id)) return id
    }

    return undefined
  }

  private onUpstreamDatagram(message: Buffer, remote: RemoteInfo): void {
    const upstream = this.options.upstream!
    if (message.length < 12 || remote.port !== upstream.port || remote.address !== upstream.host) return
    const entry = this.pending.get(message.readUInt16BE(0))
    if (!entry) return
    this.pending.delete(message.readUInt16BE(0))
    clearTimeout(entry.timer)
    this.settle(() => entry.reply(withId(message, entry.originalId)))
  }

  private settle(finish: () => void): void {
    this.stats.inFlight--
    if (!this.closed) finish()
  }

  private fail(query: DnsQuery, reply: Reply): void {
    this.stats.upstreamFailures++
    reply(buildResponse(query, {rcode: RCODE.servFail}))
  }

  // ---- TCP ----

  private onTcpClient(socket: Socket): void {
    this.tcpClients.add(socket)
    socket.setTimeout(TCP_IDLE_TIMEOUT_MS, () => socket.destroy())
    socket.on('error', () => {})
    socket.once('close', () => this.tcpClients.delete(socket))
    let outstanding = 0
    const frames = new FrameReader((message) => {
      if (++outstanding > MAX_PENDING_PER_TCP_CONNECTION) {
        socket.destroy()
        return
      }

      this.handle(message, (response) => {
        outstanding--
        if (!socket.destroyed) socket.write(frame(response))
      }, 'tcp')
    })
    socket.on('data', (chunk: Buffer) => {
      if (!frames.push(chunk)) socket.destroy()
    })
  }

  /** TCP questions go to the upstream over TCP too: the answer may be larger than a datagram. */
  private forwardTcp(message: Buffer, query: DnsQuery, reply: Reply): void {
    const upstream = this.options.upstream!
    this.stats.inFlight++
    let done = false
    const finish = (response?: Buffer): void => {
      if (done) return
      done = true
      connection.destroy()
      this.settle(() => (response ? reply(withId(response, query.id)) : this.fail(query, reply)))
    }

    const connection = (this.options.upstreamSockets ?? defaultUpstreamSockets).tcp(upstream)
    connection.setTimeout(this.options.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS, () => finish())
    connection.on('error', () => finish())
    connection.once('close', () => finish())
    const frames = new FrameReader((response) => finish(response))
    connection.on('data', (chunk: Buffer) => {
      if (!frames.push(chunk)) finish()
    })
    connection.write(frame(message))
  }
}

/** A DNS-over-TCP message with its 2-byte length prefix. */
export function frame(message: Buffer): Buffer {
  const prefix = Buffer.alloc(2)
  prefix.writeUInt16BE(message.length)
  return Buffer.concat([prefix, message])
}

/**
 * Splits a TCP byte stream into DNS messages: state "length" (need 2 bytes) then "body" (need N). The
 * buffer never holds more than one frame plus one chunk; a zero-length frame is a protocol error.
 */
export class FrameReader {
  private buffered: Buffer = Buffer.alloc(0)

  constructor(private readonly onMessage: (message: Buffer) => void) {}

  /** Feed a chunk; false when the stream is garbage and must be closed. */
  push(chunk: Buffer): boolean {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
    while (this.buffered.length >= 2) {
      const length = this.buffered.readUInt16BE(0)
      if (length === 0 || length > MAX_TCP_FRAME_BYTES) return false
      if (this.buffered.length < 2 + length) break
      const message = this.buffered.subarray(2, 2 + length)
      this.buffered = this.buffered.subarray(2 + length)
      this.onMessage(message)
    }

    return true
  }
}

/**
 * The first `nameserver` of a resolv.conf (port 53) other than SKIP (our own address, after a rewrite),
 * or undefined when there is none.
 */
export async function upstreamFromResolvConf(file = '/etc/resolv.conf', skip?: string): Promise<HostPort | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    return undefined
  }

  for (const line of text.split('\n')) {
    const match = /^\s*nameserver\s+(\S+)/.exec(line)
    const host = match?.[1].replace(/%.*$/, '')
    if (host && isIP(host) && host !== skip) return {host, port: 53}
  }

  return undefined
}

/** `IP`, `IP:PORT` or `[v6]:PORT` → the upstream resolver address (port 53 by default). */
export function parseDnsUpstream(text: string): HostPort {
  const address = isIP(text) ? {host: text, port: 53} : parseHostPort(text)
  if (!address || !isIP(address.host) || address.port === 0) {
    throw new ZtError('ZT_ERR_USAGE', `--dns-upstream ${JSON.stringify(text)} is not IP[:PORT]`, {exit: ExitCode.usage, suggestion: 'e.g. --dns-upstream 10.96.0.10 or --dns-upstream 127.0.0.1:5353'})
  }

  return address
}

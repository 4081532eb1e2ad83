// The framing inside an app stream (docs/hbone.md "Apps"): one HBONE CONNECT carries one session of an
// app, multiplexed as frames `type:u8 | length:u32be | payload`. The client opens with OPEN (JSON), the
// agent answers READY (JSON) or ERROR (JSON, then the end), then stdin/stdout/stderr/resize/signal/data
// frames flow until EXIT (JSON) or the end of the file. The reader is a state machine over a bounded
// buffer: a frame's length is checked against its type's limit before a byte of it is kept, so garbage
// costs at most one header and ends the stream with a ProtocolError, never a crash or a large allocation.

/** Frame types; the direction each may travel in is part of the protocol. */
export const FrameType = {
  /** client → agent, JSON: the session's parameters (what the app needs to start) */
  Open: 1,
  /** agent → client, JSON: the session started (a file's size and SHA-256, the shell run) */
  Ready: 2,
  /** agent → client, JSON {code, message, suggestion?}: refused or failed; the agent ends the stream */
  Error: 3,
  /** client → agent: bytes for the process's stdin (a terminal: keystrokes, Ctrl-C included) */
  Stdin: 4,
  /** agent → client: the process's stdout (a terminal: everything the PTY prints) */
  Stdout: 5,
  /** agent → client: the process's stderr (scripts; a PTY has none of its own) */
  Stderr: 6,
  /** client → agent, empty: no more stdin */
  StdinEnd: 7,
  /** client → agent, 4 bytes: columns u16be, rows u16be */
  Resize: 8,
  /** client → agent, a signal name (`INT`, `TERM`, `HUP`, `QUIT`, `KILL`) for a script's process */
  Signal: 9,
  /** agent → client, JSON {code, signal?, durationMs}: the process ended; nothing follows */
  Exit: 10,
  /** agent → client: a file's next bytes */
  Data: 11,
} as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

export type Direction = 'toAgent' | 'toClient'

export const FRAME_HEADER_BYTES = 5
/** The largest stdin/stdout/stderr/data payload (senders split bigger writes). */
export const MAX_DATA_PAYLOAD = 256 * 1024
/** The largest JSON payload (OPEN, READY, ERROR, EXIT). */
export const MAX_JSON_PAYLOAD = 16 * 1024

const LIMITS: Record<FrameType, {direction: Direction; max: number; min?: number; name: string}> = {
  [FrameType.Open]: {direction: 'toAgent', max: MAX_JSON_PAYLOAD, min: 2, name: 'OPEN'},
  [FrameType.Ready]: {direction: 'toClient', max: MAX_JSON_PAYLOAD, min: 2, name: 'READY'},
  [FrameType.Error]: {direction: 'toClient', max: MAX_JSON_PAYLOAD, min: 2, name: 'ERROR'},
  [FrameType.Stdin]: {direction: 'toAgent', max: MAX_DATA_PAYLOAD, name: 'STDIN'},
  [FrameType.Stdout]: {direction: 'toClient', max: MAX_DATA_PAYLOAD, name: 'STDOUT'},
  [FrameType.Stderr]: {direction: 'toClient', max: MAX_DATA_PAYLOAD, name: 'STDERR'},
  [FrameType.StdinEnd]: {direction: 'toAgent', max: 0, name: 'STDIN_END'},
  [FrameType.Resize]: {direction: 'toAgent', max: 4, min: 4, name: 'RESIZE'},
  [FrameType.Signal]: {direction: 'toAgent', max: 8, min: 1, name: 'SIGNAL'},
  [FrameType.Exit]: {direction: 'toClient', max: MAX_JSON_PAYLOAD, min: 2, name: 'EXIT'},
  [FrameType.Data]: {direction: 'toClient', max: MAX_DATA_PAYLOAD, name: 'DATA'},
}

export interface Frame {
  payload: Buffer
  type: FrameType
}

/** The peer broke the framing; the stream is unusable from here on. */
export class ProtocolError extends Error {
  readonly code = 'ZT_ERR_APP_PROTOCOL'
}

export const frameName = (type: number): string => LIMITS[type as FrameType]?.name ?? `type ${type}`

/** The 5-byte header of a frame of TYPE carrying LENGTH bytes (a RangeError past the type's limit). */
export function frameHeader(type: FrameType, length: number): Buffer {
  const limit = LIMITS[type]
  if (length > limit.max) throw new RangeError(`${limit.name} payload of ${length} bytes exceeds ${limit.max}`)
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES)
  header.writeUInt8(type, 0)
  header.writeUInt32BE(length, 1)
  return header
}

/** Encode one frame as one buffer (control frames; data goes out as header + payload, see FrameChannel.send). */
export function encodeFrame(type: FrameType, payload: Buffer | object | string = Buffer.alloc(0)): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload))
  return Buffer.concat([frameHeader(type, body.length), body], FRAME_HEADER_BYTES + body.length)
}

export const resizePayload = (columns: number, rows: number): Buffer => {
  const payload = Buffer.allocUnsafe(4)
  payload.writeUInt16BE(clampSize(columns), 0)
  payload.writeUInt16BE(clampSize(rows), 2)
  return payload
}

export const readResize = (payload: Buffer): {columns: number; rows: number} => ({columns: payload.readUInt16BE(0), rows: payload.readUInt16BE(2)})

const clampSize = (value: number): number => Math.min(Math.max(Math.trunc(value) || 1, 1), 10_000)

/** A JSON payload as an object; a ProtocolError when it is not one. */
export function readJson(frame: Frame): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(frame.payload.toString('utf8'))
  } catch {
    throw new ProtocolError(`${frameName(frame.type)} does not carry JSON`)
  }

  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ProtocolError(`${frameName(frame.type)} does not carry a JSON object`)
  return value as Record<string, unknown>
}

/**
 * Frames from a byte stream, for one direction. States: reading a header (≤ 5 bytes kept), then its
 * payload (≤ its type's limit, checked first). After a ProtocolError every later push throws it again.
 */
export class FrameReader {
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES)
  private headerFill = 0
  /** the frame being read: its payload buffer is allocated once its header passed the checks */
  private pending?: {fill: number; payload: Buffer; type: FrameType}
  private broken?: ProtocolError

  constructor(private readonly direction: Direction) {}

  /** Bytes of the current frame read so far (at most one header and one payload). */
  get buffered(): number {
    return this.pending ? FRAME_HEADER_BYTES + this.pending.fill : this.headerFill
  }

  /** Feed CHUNK; returns the frames it completed, in order. */
  push(chunk: Buffer): Frame[] {
    if (this.broken) throw this.broken
    const frames: Frame[] = []
    let offset = 0
    for (;;) {
      if (!this.pending) {
        if (offset === chunk.length) break
        const take = Math.min(FRAME_HEADER_BYTES - this.headerFill, chunk.length - offset)
        chunk.copy(this.header, this.headerFill, offset, offset + take)
        this.headerFill += take
        offset += take
        if (this.headerFill < FRAME_HEADER_BYTES) break
        this.headerFill = 0
        const {length, type} = this.checkHeader(this.header.readUInt8(0), this.header.readUInt32BE(1))
        if (chunk.length - offset >= length) {
          // The whole payload is in this chunk: no copy.
          frames.push({payload: chunk.subarray(offset, offset + length), type})
          offset += length
          continue
        }

        this.pending = {fill: 0, payload: Buffer.allocUnsafe(length), type}
      }

      const pending = this.pending
      const take = Math.min(pending.payload.length - pending.fill, chunk.length - offset)
      chunk.copy(pending.payload, pending.fill, offset, offset + take)
      pending.fill += take
      offset += take
      if (pending.fill < pending.payload.length) break
      frames.push({payload: pending.payload, type: pending.type})
      this.pending = undefined
    }

    return frames
  }

  /** The stream ended: a half-read frame is a truncation. */
  end(): void {
    if (this.broken) throw this.broken
    if (this.headerFill > 0 || this.pending) this.fail(`the stream ended inside a frame (${this.buffered} bytes of it read)`)
  }

  private checkHeader(type: number, length: number): {length: number; type: FrameType} {
    const limit = LIMITS[type as FrameType]
    if (!limit) this.fail(`unknown frame type ${type}`)
    if (limit.direction !== this.direction) this.fail(`${limit.name} frames do not travel ${this.direction === 'toAgent' ? 'to the agent' : 'to the client'}`)
    if (length > limit.max || length < (limit.min ?? 0)) this.fail(`${limit.name} frame of ${length} bytes (allowed ${limit.min ?? 0}–${limit.max})`)
    return {length, type: type as FrameType}
  }

  private fail(message: string): never {
    this.broken = new ProtocolError(message)
    throw this.broken
  }
}

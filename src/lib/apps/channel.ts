// One side of an app stream: frames in (read with backpressure: the stream pauses while the consumer
// awaits), frames out (write's own backpressure), byte counts both ways. Agent and client use the same one.
import type {Duplex} from 'node:stream'

import {type Direction, encodeFrame, type Frame, FRAME_HEADER_BYTES, frameHeader, FrameReader, FrameType, MAX_DATA_PAYLOAD, ProtocolError} from './wire.js'

export class FrameChannel {
  readonly bytes = {received: 0, sent: 0}
  private readonly incoming: AsyncGenerator<Frame, void>

  /** READS: the direction of the frames this side receives. */
  constructor(readonly stream: Duplex, reads: Direction) {
    this.incoming = this.read(new FrameReader(reads))
  }

  /** The next frame, undefined at the end of the stream; a ProtocolError on garbage, a timeout, or the stream's error. */
  async next(timeoutMs?: number): Promise<Frame | undefined> {
    const next = this.incoming.next()
    if (timeoutMs === undefined) return (await next).value ?? undefined
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new ProtocolError(`no frame within ${timeoutMs} ms`)), timeoutMs)
      timer.unref()
    })
    try {
      return (await Promise.race([next, timeout])).value ?? undefined
    } finally {
      clearTimeout(timer)
    }
  }

  /** Every further frame, until the end of the stream. */
  async *frames(): AsyncGenerator<Frame, void> {
    for (let frame = await this.next(); frame; frame = await this.next()) yield frame
  }

  /** Send one frame (a data payload of any size is split); false when the stream wants the sender to wait for drained(). */
  send(type: FrameType, payload?: Buffer | object | string): boolean {
    const {stream} = this
    if (stream.destroyed || stream.writableEnded) return true
    if (!Buffer.isBuffer(payload) || payload.length === 0 || !isData(type)) {
      const frame = encodeFrame(type, payload)
      this.bytes.sent += frame.length
      return stream.write(frame)
    }

    // Data: each header, then the payload itself (no copy), written together.
    let more = true
    stream.cork()
    for (let offset = 0; offset < payload.length; offset += MAX_DATA_PAYLOAD) {
      const part = payload.subarray(offset, offset + MAX_DATA_PAYLOAD)
      stream.write(frameHeader(type, part.length))
      more = stream.write(part)
      this.bytes.sent += FRAME_HEADER_BYTES + part.length
    }

    stream.uncork()
    return more
  }

  /** Resolves once the stream's write buffer drained, or the stream is gone (a failed write shows in the reads). */
  async drained(): Promise<void> {
    await writableDrained(this.stream)
  }

  /** Half-close our side: the peer reads the end after the frames sent so far. */
  end(): void {
    if (!this.stream.writableEnded && !this.stream.destroyed) this.stream.end()
  }

  destroy(): void {
    this.stream.destroy()
  }

  private async *read(reader: FrameReader): AsyncGenerator<Frame, void> {
    // destroyOnReturn false: stopping to read must not tear down the direction we still write.
    for await (const chunk of this.stream.iterator({destroyOnReturn: false}) as AsyncIterable<Buffer>) {
      this.bytes.received += chunk.length
      yield* reader.push(chunk)
    }

    reader.end()
  }
}

/** Resolves when STREAM can take more: drained, closed or failed (never rejects, leaves no listener behind). */
export async function writableDrained(stream: NodeJS.WritableStream & {destroyed?: boolean; writableNeedDrain?: boolean}): Promise<void> {
  if (stream.writableNeedDrain === false || stream.destroyed) return
  await new Promise<void>((resolve) => {
    const done = (): void => {
      for (const event of ['close', 'drain', 'error']) stream.off(event, done)
      resolve()
    }

    for (const event of ['close', 'drain', 'error']) stream.once(event, done)
  })
}

const isData = (type: FrameType): boolean => type === FrameType.Data || type === FrameType.Stdin || type === FrameType.Stdout || type === FrameType.Stderr

// Newline-delimited JSON over a byte stream, as a small state machine over a bounded buffer: a line
// longer than the limit is a protocol error, never a reason to keep buffering.
import {ZtError} from '../errors.js'

export class LineTooLongError extends ZtError {
  constructor(limit: number) {
    super('ZT_ERR_PROTOCOL', `a line on the config stream exceeds ${limit} bytes`)
  }
}

export class LineSplitter {
  private pending: Buffer[] = []
  private pendingBytes = 0

  constructor(private readonly maxLineBytes: number) {}

  /** The complete lines in this chunk (without the newline); keeps the partial tail. Throws LineTooLongError. */
  push(chunk: Buffer): string[] {
    const lines: string[] = []
    let start = 0
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, newline)
      if (this.pendingBytes + piece.length > this.maxLineBytes) throw new LineTooLongError(this.maxLineBytes)
      const line = this.pendingBytes === 0 ? piece : Buffer.concat([...this.pending, piece])
      this.pending = []
      this.pendingBytes = 0
      const text = line.toString('utf8').trim()
      if (text !== '') lines.push(text)
      start = newline + 1
    }

    const tail = chunk.subarray(start)
    if (tail.length > 0) {
      if (this.pendingBytes + tail.length > this.maxLineBytes) throw new LineTooLongError(this.maxLineBytes)
      this.pending.push(Buffer.from(tail))
      this.pendingBytes += tail.length
    }

    return lines
  }
}

/** JSON.parse that reports garbage as undefined instead of throwing; objects only. */
export function parseJsonObject(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

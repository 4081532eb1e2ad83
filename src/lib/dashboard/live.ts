// Live updates as server-sent events: one collection round every interval while a page listens (none
// while nobody does), serialized once, written to every stream. A stream that cannot keep up skips
// rounds instead of buffering them; the number of streams is bounded.
import type {ServerResponse} from 'node:http'

import type {DashboardSnapshot} from './model.js'

const MAX_STREAMS = 16
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024
const KEEPALIVE_MS = 15_000

export class LiveFeed {
  private latest?: {at: number; json: string}
  private round?: Promise<string>
  private readonly streams = new Set<ServerResponse>()
  private readonly timer: NodeJS.Timeout
  private readonly keepalive: NodeJS.Timeout

  constructor(
    private readonly collect: () => Promise<DashboardSnapshot>,
    private readonly intervalMs: number,
    private readonly onError: (error: unknown) => void,
  ) {
    this.timer = setInterval(() => {
      if (this.streams.size > 0) void this.refresh().catch(() => {})
    }, intervalMs)
    this.timer.unref()
    this.keepalive = setInterval(() => this.write(': keepalive\n\n'), KEEPALIVE_MS)
    this.keepalive.unref()
  }

  /** The latest snapshot as JSON, collected now when there is none or it is older than one interval. */
  async current(): Promise<string> {
    if (this.latest && Date.now() - this.latest.at < this.intervalMs) return this.latest.json
    return this.refresh()
  }

  /** Collect a round now (one at a time: a caller during a round gets that round) and push it to every stream. */
  refresh(): Promise<string> {
    this.round ??= this.collect()
      .then((snapshot) => {
        const json = JSON.stringify(snapshot)
        this.latest = {at: Date.now(), json}
        this.write(`event: snapshot\ndata: ${json}\n\n`)
        return json
      })
      .catch((error: unknown) => {
        this.write(`event: problem\ndata: ${JSON.stringify({message: (error as Error).message})}\n\n`)
        this.onError(error)
        throw error
      })
      .finally(() => {
        this.round = undefined
      })
    return this.round
  }

  /** Take over RESPONSE as an event stream; false when too many are open. */
  subscribe(response: ServerResponse): boolean {
    if (this.streams.size >= MAX_STREAMS) return false
    response.writeHead(200, {'cache-control': 'no-store', 'content-type': 'text/event-stream; charset=utf-8', 'x-accel-buffering': 'no'})
    response.write(`retry: ${this.intervalMs}\n\n`)
    this.streams.add(response)
    response.once('close', () => this.streams.delete(response))
    if (this.latest) response.write(`event: snapshot\ndata: ${this.latest.json}\n\n`)
    void this.current().catch(() => {})
    return true
  }

  close(): void {
    clearInterval(this.timer)
    clearInterval(this.keepalive)
    for (const stream of this.streams) stream.end()
    this.streams.clear()
  }

  private write(chunk: string): void {
    for (const stream of this.streams) {
      if (stream.writableLength < MAX_BUFFERED_BYTES) stream.write(chunk)
    }
  }
}

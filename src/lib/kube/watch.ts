// A watch that keeps itself alive: it resumes from the last resourceVersion it saw, restarts with
// bounded exponential backoff and jitter after errors (never the fixed-delay loop of client-node's
// informer example), and reports "too old" (410 Gone) to its owner, who relists. It queues nothing:
// each event is handed to the callback as it arrives.
import type {KubeConfig} from '@kubernetes/client-node'

import {kubeMessage, kubeModule, kubeStatus} from './client.js'

export interface WatchEvent {
  /** ADDED, MODIFIED, DELETED (BOOKMARK and ERROR are handled here) */
  type: string
  object: {metadata?: {name?: string; resourceVersion?: string}}
}

export interface ResumableWatchOptions {
  kc: KubeConfig
  /** `/api/v1/namespaces/NS/secrets`, `/apis/GROUP/VERSION/namespaces/NS/PLURAL` */
  path: string
  labelSelector?: string
  /** resume point: events after this resourceVersion */
  resourceVersion: string
  onEvent(event: WatchEvent): void
  /** the resume point is older than the server keeps (410): relist, then call restart(rv) */
  onExpired(): void
  onError?(message: string, retryInMs: number): void
  minBackoffMs?: number
  maxBackoffMs?: number
}

export class ResumableWatch {
  private abort?: AbortController
  private failures = 0
  private resourceVersion: string
  private stopped = false
  private timer?: NodeJS.Timeout
  /** bumped on every (re)start, so the callbacks of an abandoned attempt are ignored */
  private generation = 0

  constructor(private readonly options: ResumableWatchOptions) {
    this.resourceVersion = options.resourceVersion
  }

  start(): void {
    this.stopped = false
    void this.connect()
  }

  /** Start over from a new resume point (after the owner relisted). */
  restart(resourceVersion: string): void {
    this.resourceVersion = resourceVersion
    this.failures = 0
    this.abort?.abort()
    clearTimeout(this.timer)
    if (!this.stopped) void this.connect()
  }

  stop(): void {
    this.stopped = true
    this.generation++
    clearTimeout(this.timer)
    this.abort?.abort()
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation
    const current = (): boolean => generation === this.generation && !this.stopped
    const {Watch} = await kubeModule()
    const watch = new Watch(this.options.kc)
    const startedAt = Date.now()
    const query = {
      allowWatchBookmarks: true,
      labelSelector: this.options.labelSelector,
      resourceVersion: this.resourceVersion,
    }
    try {
      const abort = await watch.watch(this.options.path, query, (type, object: WatchEvent['object'] & {code?: number; message?: string}) => {
        if (!current()) return
        if (type === 'ERROR') {
          // A Status object: 410 means our resume point was compacted away.
          if (object.code === 410) this.expired(generation)
          else this.retry(generation, `watch ${this.options.path}: ${object.message ?? 'error event'}`)
          return
        }

        const rv = object.metadata?.resourceVersion
        if (rv) this.resourceVersion = rv
        this.failures = 0
        if (type !== 'BOOKMARK') this.options.onEvent({object, type})
      }, (error: unknown) => {
        if (!current()) return
        if (error === null || error === undefined) {
          // The server ended the watch (its timeout): resume at once, unless it keeps ending at once.
          if (Date.now() - startedAt >= 1000) void this.connect()
          else this.retry(generation, `watch ${this.options.path}: closed by the server right after it started`)
          return
        }

        if (kubeStatus(error) === 410) this.expired(generation)
        else this.retry(generation, `watch ${this.options.path}: ${kubeMessage(error)}`)
      })
      if (current()) this.abort = abort
      else abort.abort()
    } catch (error) {
      if (!current()) return
      if (kubeStatus(error) === 410) this.expired(generation)
      else this.retry(generation, `watch ${this.options.path}: ${kubeMessage(error)}`)
    }
  }

  private expired(generation: number): void {
    if (generation !== this.generation) return
    this.generation++
    this.abort?.abort()
    this.options.onExpired()
  }

  private retry(generation: number, message: string): void {
    if (generation !== this.generation || this.stopped) return
    this.generation++
    this.abort?.abort()
    this.failures++
    const min = this.options.minBackoffMs ?? 200
    const max = this.options.maxBackoffMs ?? 10_000
    const base = Math.min(max, min * 2 ** Math.min(this.failures - 1, 16))
    const delay = Math.round(base / 2 + Math.random() * (base / 2))
    this.options.onError?.(message, delay)
    this.timer = setTimeout(() => void this.connect(), delay)
    this.timer.unref()
  }
}

// How the Kubernetes store turns API objects into revisions of the configuration.
//
// A revision IS an API server resourceVersion (etcd's revision: one counter for every object of the
// cluster, strictly increasing, never reused). Revision V is the configuration derived from every
// ztctl object as it was at V, read with `resourceVersion=V&resourceVersionMatch=Exact` lists: a
// consistent cut across all kinds, the same on every replica. Watches (one per kind, resuming, with
// backoff) only say *that* something changed and at which resourceVersion; each sync then lists every
// kind at exactly that revision, diffs the derived view against the previous one and appends the
// changes to an in-memory log. Syncs run one at a time and coalesce: while one runs, hints only raise
// the next target (no queue grows). A replica started later, or one that synced at other revisions,
// still answers `changesSince` exactly: each change carries the resourceVersion of its source object.
import {EventEmitter} from 'node:events'

import type {ConfigSnapshot, ResourceKind} from '../../config/types.js'
import {ExitCode, ZtError} from '../../errors.js'
import {CRD_KINDS, type CrdKind} from '../../kube/crds.js'
import {isGone, kubeError} from '../../kube/client.js'
import {ResumableWatch} from '../../kube/watch.js'
import type {Logger} from '../logger.js'
import type {StoredIdentity} from './kube-identities.js'
import {type ConfigView, type CustomObject, deriveView, diffViews, emptyView, snapshotOf, type TaggedChange} from './kube-view.js'

/** One kind of object the configuration is derived from. */
export interface ObjectSource {
  name: CrdKind | 'identity'
  watchPath: string
  labelSelector?: string
  /** list at exactly `resourceVersion`, or (undefined) a quorum read at the latest revision */
  list(resourceVersion?: number): Promise<{items: unknown[]; resourceVersion: string}>
}

export interface FollowerOptions {
  kc: import('@kubernetes/client-node').KubeConfig
  logger: Logger
  /** keep this many revisions in the change log */
  changeLogRevisions: number
  /** the cluster's current revision (a cheap quorum read) */
  latestRevision(): Promise<number>
  parseIdentity(object: unknown): StoredIdentity | undefined
  sources: ObjectSource[]
  /** full resync interval (a safety net under the watches) */
  resyncMs?: number
}

interface LogEntry {
  changes: TaggedChange[]
  version: number
}

const SYNC_RETRY_MIN_MS = 100
const SYNC_RETRY_MAX_MS = 5000
const DEFAULT_RESYNC_MS = 5 * 60_000

export const isVersion = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0

export class ConfigFollower {
  /** the revision of the published configuration (the last sync that changed it) */
  version = 0
  /** the last revision synced (later than `version` when the syncs since changed nothing) */
  syncedAt = 0
  /** the identity Secrets of the last sync */
  identities: StoredIdentity[] = []
  private view: ConfigView = emptyView()
  private floor = 0
  private log: LogEntry[] = []
  private readonly commits = new EventEmitter()
  private readonly watches: ResumableWatch[] = []
  private target = 0
  private wantFresh = false
  private running?: Promise<void>
  private retryTimer?: NodeJS.Timeout
  private resyncTimer?: NodeJS.Timeout
  private failures = 0
  private closed = false
  private waiters = new Set<{resolve: () => void; rv: number}>()
  /** called with the revision of the next fresh sync that completes */
  private afterFresh: ((revision: number) => void)[] = []
  private readonly reported = new Set<string>()

  constructor(private readonly options: FollowerOptions) {
    this.commits.setMaxListeners(0)
  }

  /** First sync (a quorum read), then watch every kind from that revision on. */
  async start(): Promise<void> {
    await this.sync(undefined)
    // The first cut is this replica's first published revision; the log reaches back to it.
    this.version = this.syncedAt
    this.floor = this.syncedAt
    for (const source of this.options.sources) {
      const watch = new ResumableWatch({
        kc: this.options.kc,
        labelSelector: source.labelSelector,
        onError: (message, retryInMs) => this.options.logger.warn({err: message, retryInMs}, 'watch failed; retrying'),
        onEvent: (event) => this.hint(Number(event.object.metadata?.resourceVersion)),
        // Our resume point was compacted away: relist at the latest revision and resume from there.
        onExpired: () => this.requestFresh((rv) => watch.restart(String(rv))),
        path: source.watchPath,
        resourceVersion: String(this.syncedAt),
      })
      this.watches.push(watch)
      watch.start()
    }

    const resync = (): void => {
      this.resyncTimer = setTimeout(() => {
        this.requestFresh()
        resync()
      }, this.options.resyncMs ?? DEFAULT_RESYNC_MS)
      this.resyncTimer.unref()
    }

    resync()
  }

  close(): void {
    this.closed = true
    for (const watch of this.watches) watch.stop()
    clearTimeout(this.retryTimer)
    clearTimeout(this.resyncTimer)
    for (const waiter of this.waiters) waiter.resolve()
    this.waiters.clear()
  }

  onCommit(listener: (version: number) => void): () => void {
    this.commits.on('commit', listener)
    return () => this.commits.off('commit', listener)
  }

  /** Something changed at `rv`: sync to it (soon, coalesced with other hints). */
  hint(rv: number): void {
    if (!isVersion(rv) || rv <= this.syncedAt) return
    this.target = Math.max(this.target, rv)
    this.pump()
  }

  /** Resolve once the published configuration includes revision `rv` (bounded by timeoutMs). */
  async reach(rv: number, timeoutMs = 10_000): Promise<void> {
    if (rv <= this.syncedAt || this.closed) return
    this.hint(rv)
    await new Promise<void>((resolve, reject) => {
      const waiter = {resolve: () => {
        clearTimeout(timer)
        resolve()
      }, rv}
      const timer = setTimeout(() => {
        this.waiters.delete(waiter)
        reject(new ZtError('ZT_ERR_STORE_UNAVAILABLE', `the Kubernetes API server did not serve revision ${rv} within ${timeoutMs} ms`, {
          exit: ExitCode.unreachable,
          suggestion: 'check the API server (`kubectl get --raw /readyz`) and the controller log',
        }))
      }, timeoutMs)
      timer.unref()
      this.waiters.add(waiter)
    })
  }

  /** Sync to the latest revision of the cluster (a linearizable read); returns that revision. */
  async fresh(): Promise<number> {
    const latest = await this.latestRevision()
    await this.reach(latest)
    return latest
  }

  snapshot(): {resources: ConfigSnapshot; version: number} {
    return {resources: snapshotOf(this.view), version: this.version}
  }

  list(kind: ResourceKind): unknown[] {
    return [...this.view[kind].entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, entry]) => structuredClone(entry.value))
  }

  /** One resource by key (a copy), without listing the kind. */
  get(kind: ResourceKind, key: string): unknown {
    const entry = this.view[kind].get(key)
    return entry === undefined ? undefined : structuredClone(entry.value)
  }

  has(kind: ResourceKind, key: string): boolean {
    return this.view[kind].has(key)
  }

  /**
   * The changes after `since`, cut exactly at `since` even when this replica never synced at that
   * revision: a put whose source object is no newer than `since` was already there; deletes (whose
   * revision a list cannot tell) are always included, and deleting an absent key changes nothing.
   */
  async changesSince(since: number): Promise<{changes: TaggedChange[]; version: number} | undefined> {
    if (!isVersion(since)) return undefined
    if (since > this.syncedAt) {
      // From a replica ahead of us, or garbage: the cluster's own revision tells which.
      const latest = await this.fresh().catch(() => 0)
      if (since > latest) return undefined
    }

    if (since < this.floor) return undefined
    const changes: TaggedChange[] = []
    for (const entry of this.log) {
      if (entry.version <= since) continue
      for (const change of entry.changes) if (change.rv === undefined || change.rv > since) changes.push(change)
    }

    return {changes: dedupe(changes), version: Math.max(this.version, since)}
  }

  private requestFresh(then?: (revision: number) => void): void {
    if (then) this.afterFresh.push(then)
    this.wantFresh = true
    this.pump()
  }

  private latestRevision(): Promise<number> {
    return this.options.latestRevision().catch((error: unknown) => {
      throw kubeError(error, 'read the latest revision from the API server')
    })
  }

  private pump(): void {
    if (this.running || this.retryTimer || this.closed) return
    const fresh = this.wantFresh
    if (!fresh && this.target <= this.syncedAt) return
    this.wantFresh = false
    const target = fresh ? undefined : this.target
    const waiting = fresh ? this.afterFresh.splice(0) : []
    this.running = this.sync(target)
      .then(() => {
        this.failures = 0
        for (const then of waiting) then(this.syncedAt)
      }, (error: unknown) => {
        this.afterFresh.unshift(...waiting)
        if (isGone(error)) {
          this.wantFresh = true
          return
        }

        this.failures++
        const base = Math.min(SYNC_RETRY_MAX_MS, SYNC_RETRY_MIN_MS * 2 ** Math.min(this.failures - 1, 10))
        const delay = Math.round(base / 2 + Math.random() * (base / 2))
        this.options.logger.warn({err: kubeError(error, 'read the configuration objects').message, retryInMs: delay}, 'configuration sync failed; retrying')
        if (fresh) this.wantFresh = true
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined
          this.pump()
        }, delay)
        this.retryTimer.unref()
      })
      .finally(() => {
        this.running = undefined
        this.pump()
      })
  }

  /** List every kind at one revision (undefined: the latest), derive, diff, log, notify. */
  private async sync(target: number | undefined): Promise<void> {
    const started = Date.now()
    const [first, ...rest] = this.options.sources
    // A target revision: every kind at once. The latest: the first list says which revision that is.
    const head = target === undefined ? await first.list() : undefined
    const revision = target ?? Number(head!.resourceVersion)
    if (!isVersion(revision)) throw new Error(`the API server returned resourceVersion ${JSON.stringify(head?.resourceVersion)}, not an etcd revision`)
    const lists = head ? [head, ...(await Promise.all(rest.map((source) => source.list(revision))))] : await Promise.all(this.options.sources.map((source) => source.list(revision)))
    for (const [index, list] of lists.entries()) {
      if (Number(list.resourceVersion) !== revision) {
        throw new Error(`the API server listed ${this.options.sources[index].name} at ${list.resourceVersion}, not at ${revision}: it does not honour resourceVersionMatch=Exact`)
      }
    }

    if (this.closed || revision <= this.syncedAt) return
    const custom = Object.fromEntries(CRD_KINDS.map((kind) => [kind, [] as CustomObject[]])) as Record<CrdKind, CustomObject[]>
    const identities: StoredIdentity[] = []
    for (const [index, source] of this.options.sources.entries()) {
      if (source.name === 'identity') {
        for (const item of lists[index].items) {
          const parsed = this.options.parseIdentity(item)
          if (parsed) identities.push(parsed)
        }
      } else {
        custom[source.name] = lists[index].items as CustomObject[]
      }
    }

    const {rejected, view} = deriveView({custom, identities})
    this.report(rejected, revision)
    const changes = diffViews(this.view, view)
    this.view = view
    this.identities = identities
    this.syncedAt = revision
    if (changes.length > 0) {
      this.version = revision
      this.log.push({changes, version: revision})
      while (this.log.length > this.options.changeLogRevisions) this.floor = this.log.shift()!.version
    }

    for (const waiter of this.waiters) {
      if (waiter.rv <= revision) {
        this.waiters.delete(waiter)
        waiter.resolve()
      }
    }

    this.options.logger.debug({changes: changes.length, kinds: lists.length, ms: Date.now() - started, revision}, 'configuration synced')
    if (changes.length > 0) this.commits.emit('commit', revision)
  }

  /** Log each invalid object once per version of it. */
  private report(rejected: {kind: ResourceKind; object: string; problem: string}[], revision: number): void {
    for (const item of rejected) {
      const id = `${item.kind}/${item.object}:${item.problem}`
      if (this.reported.has(id)) continue
      if (this.reported.size > 1024) this.reported.clear()
      this.reported.add(id)
      this.options.logger.warn({kind: item.kind, object: item.object, problem: item.problem, revision}, 'ignoring an invalid custom resource')
    }
  }
}

/** The last change per key wins (a delta may hold several changes of one key from several revisions). */
function dedupe(changes: TaggedChange[]): TaggedChange[] {
  const last = new Map<string, number>()
  changes.forEach((change, index) => last.set(`${change.kind}\0${change.key}`, index))
  return changes.filter((change, index) => last.get(`${change.kind}\0${change.key}`) === index).map(({rv: _rv, ...change}) => change as TaggedChange)
}

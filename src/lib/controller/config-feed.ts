// What the config stream sends, serialized once and shared by every stream (the hub writes the same
// bytes to each agent): the delta from a version to the current one, and the snapshot of a recent
// version split into lines of at most SNAPSHOT_PART_BYTES. A new subscriber gets that cached snapshot
// followed by the delta from it, so a subscribe storm costs one snapshot, not one per agent.
// Every line starts with `{"type":…,"version":…` (the fields a reader needs first).
import {type Change, type ConfigSnapshot, RESOURCE_KINDS, type ResourceKind} from '../config/types.js'
import type {Store} from './store/store.js'

/** A snapshot line stays below this (the agent's line limit is far above): parts follow with `more`. */
export const SNAPSHOT_PART_BYTES = 4 * 1024 * 1024
/** A cached snapshot older than this many revisions is rebuilt instead of being followed by a long delta. */
const SNAPSHOT_REUSE_REVISIONS = 2000

export interface FeedLines {
  lines: Buffer[]
  version: number
}

export class ConfigFeed {
  private snapshot?: Promise<FeedLines>
  private rebuilding?: Promise<FeedLines>
  /** since → the delta line to `deltasAt` (undefined: nothing changed; null: the log does not reach back) */
  private readonly deltas = new Map<number, Promise<FeedLines | null | undefined>>()
  private deltasAt = -1

  constructor(private readonly store: Store) {}

  /**
   * The delta from SINCE to CURRENT as one line; undefined when nothing changed, null when the change log
   * no longer reaches back to SINCE (the stream then needs a snapshot).
   */
  async delta(since: number, current: number): Promise<FeedLines | null | undefined> {
    if (since === current) return undefined
    if (current !== this.deltasAt) {
      this.deltas.clear()
      this.deltasAt = current
    }

    let line = this.deltas.get(since)
    if (!line) {
      line = this.store.changesSince(since).then((delta) => {
        if (!delta) return null
        if (delta.version === since) return undefined
        return {lines: [deltaLine(since, delta.version, delta.changes)], version: delta.version}
      })
      line.catch(() => this.deltas.delete(since))
      this.deltas.set(since, line)
    }

    return line
  }

  /** The lines of a snapshot of CURRENT or a recent version (then send the delta from its version too). */
  async snapshotLines(current: number): Promise<FeedLines> {
    const cached = await this.snapshot?.catch(() => undefined)
    if (cached && current - cached.version <= SNAPSHOT_REUSE_REVISIONS && (await this.delta(cached.version, current)) !== null) return cached
    // Callers arriving while it is rebuilt share the one build.
    if (!this.rebuilding) {
      const building = this.store.snapshot().then(({resources, version}) => ({lines: snapshotLines(resources, version), version}))
      this.rebuilding = building
      this.snapshot = building
      building.then(() => undefined, () => {
        if (this.snapshot === building) this.snapshot = undefined
      }).finally(() => {
        this.rebuilding = undefined
      })
    }

    return this.rebuilding
  }
}

function deltaLine(from: number, version: number, changes: Change[]): Buffer {
  return Buffer.from(`{"type":"delta","version":${version},"from":${from},"changes":${JSON.stringify(changes)}}\n`)
}

/**
 * The snapshot as lines of at most SNAPSHOT_PART_BYTES (a single entry larger than that gets a line of its
 * own). The first line names every kind, so a snapshot in one line is a complete ConfigSnapshot.
 */
export function snapshotLines(resources: ConfigSnapshot, version: number, partBytes = SNAPSHOT_PART_BYTES): Buffer[] {
  const parts: string[][] = []
  let current: {entries: Map<ResourceKind, string[]>; size: number} = {entries: new Map(RESOURCE_KINDS.map((kind) => [kind, []])), size: 0}
  const close = (): void => {
    parts.push([...current.entries].map(([kind, entries]) => `${JSON.stringify(kind)}:{${entries.join(',')}}`))
    current = {entries: new Map(), size: 0}
  }

  for (const kind of RESOURCE_KINDS) {
    for (const [key, value] of Object.entries(resources[kind] ?? {})) {
      const entry = `${JSON.stringify(key)}:${JSON.stringify(value)}`
      if (current.size > 0 && current.size + entry.length > partBytes) close()
      if (!current.entries.has(kind)) current.entries.set(kind, [])
      current.entries.get(kind)!.push(entry)
      current.size += entry.length + 1
    }
  }

  close()
  return parts.map((kinds, index) => {
    const more = index < parts.length - 1 ? ',"more":true' : ''
    return Buffer.from(`{"type":"snapshot","version":${version}${more},"resources":{${kinds.join(',')}}}\n`)
  })
}

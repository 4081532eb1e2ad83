// The published files' facts on the agent: size, modification time and SHA-256, hashed once per version
// of a file (device, inode, size, mtime) and again whenever it changes; hashing starts when the
// configuration names a file, so the first fetch does not wait. Bytes served per file feed the metrics.
import {createHash} from 'node:crypto'
import {constants as fsConstants, createReadStream} from 'node:fs'
import {access, stat} from 'node:fs/promises'
import type {Stats} from 'node:fs'

import type {PublishedFile} from '../../config/types.js'
import {describeSystemError} from '../../errors.js'

export interface FileFacts {
  mtimeMs: number
  sha256: string
  size: number
  /** identifies the version hashed: device, inode, size, mtime */
  version: string
}

export interface FileStatus {
  error?: string
  name: string
  path: string
  sha256?: string
  size?: number
}

const versionOf = (stats: Stats): string => `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}`

export class FileCatalog {
  private readonly hashed = new Map<string, {facts: Promise<FileFacts>; settled?: FileFacts | Error; version: string}>()
  private readonly sent = new Map<string, number>()
  private files: PublishedFile[] = []

  /**
   * The files of the configuration now: hash the new ones in the background, forget the rest. Resolves
   * with the ones that cannot be served (name → why: missing, not a regular file, unreadable).
   */
  async configure(files: PublishedFile[]): Promise<Map<string, string>> {
    this.files = files
    const paths = new Set(files.map((file) => file.path))
    for (const path of this.hashed.keys()) if (!paths.has(path)) this.hashed.delete(path)
    for (const name of this.sent.keys()) if (!files.some((file) => file.name === name)) this.sent.delete(name)
    const problems = new Map<string, string>()
    await Promise.all(files.map(async (file) => {
      try {
        await access(file.path, fsConstants.R_OK)
        if (!(await stat(file.path)).isFile()) throw new Error(`${file.path} is not a regular file`)
        void this.facts(file.path).catch(() => {})
      } catch (error) {
        problems.set(file.name, (error as NodeJS.ErrnoException).code ? `cannot read ${file.path}: ${describeSystemError(error)}` : (error as Error).message)
      }
    }))
    return problems
  }

  /** PATH's facts now; a changed file is hashed again. Rejects with the system's words. */
  async facts(path: string): Promise<FileFacts> {
    let stats: Stats
    try {
      stats = await stat(path)
    } catch (error) {
      throw new Error(describeSystemError(error), {cause: error})
    }

    if (!stats.isFile()) throw new Error(`${path} is not a regular file`)
    const version = versionOf(stats)
    const known = this.hashed.get(path)
    if (known?.version === version) return known.facts
    const entry: {facts: Promise<FileFacts>; settled?: FileFacts | Error; version: string} = {facts: hashFile(path, stats, version), version}
    entry.facts.then((facts) => (entry.settled = facts), (error: Error) => (entry.settled = error))
    this.hashed.set(path, entry)
    return entry.facts
  }

  /** Whether PATH is still the version FACTS describe (a file that changed while it was sent is not). */
  async unchanged(path: string, facts: FileFacts): Promise<boolean> {
    return stat(path).then((stats) => versionOf(stats) === facts.version, () => false)
  }

  countSent(name: string, bytes: number): void {
    this.sent.set(name, (this.sent.get(name) ?? 0) + bytes)
  }

  /** What `proxy-config apps` shows: each file with its last known hash or error. */
  status(): FileStatus[] {
    return this.files.map((file) => {
      const settled = this.hashed.get(file.path)?.settled
      if (settled instanceof Error) return {error: settled.message, name: file.name, path: file.path}
      return {name: file.name, path: file.path, sha256: settled?.sha256, size: settled?.size}
    })
  }

  /** Prometheus lines: bytes of file content served, per file. */
  renderMetrics(escape: (value: string) => string): string[] {
    const lines = ['# HELP ztctl_app_file_bytes_sent_total File content bytes the file app sent, per published file.', '# TYPE ztctl_app_file_bytes_sent_total counter']
    for (const [name, bytes] of this.sent) lines.push(`ztctl_app_file_bytes_sent_total{file="${escape(name)}"} ${bytes}`)
    return lines
  }
}

async function hashFile(path: string, stats: Stats, version: string): Promise<FileFacts> {
  const hash = createHash('sha256')
  try {
    if (stats.size > 0) for await (const chunk of createReadStream(path, {end: stats.size - 1, highWaterMark: 1024 * 1024})) hash.update(chunk as Buffer)
  } catch (error) {
    throw new Error(describeSystemError(error), {cause: error})
  }

  return {mtimeMs: stats.mtimeMs, sha256: hash.digest('hex'), size: stats.size, version}
}

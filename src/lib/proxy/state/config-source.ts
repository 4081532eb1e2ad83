// Where the agent's configuration comes from. Two sources behind one interface: the controller's
// stream (production) and a static JSON file holding a ConfigSnapshot (offline use, benchmarks,
// tests). Both hand the agent whole snapshots; the agent diffs and applies them live.
import {watch, type FSWatcher} from 'node:fs'
import {readFile} from 'node:fs/promises'
import path from 'node:path'

import type {AgentMessage, ConfigSnapshot, ResourceStatus} from '../../config/types.js'
import type {IdentityFile} from '../../identity/file.js'
import {ExitCode, ZtError} from '../../errors.js'
import {validateSnapshot} from './state.js'

export interface ConfigUpdate {
  snapshot: ConfigSnapshot
  version: number
}

/**
 * Apply a configuration resource by resource; resolves with the status of each resource the agent acts
 * on or could not apply. A rejection means the version was not taken at all (the controller source nacks it).
 */
export type ApplyConfig = (update: ConfigUpdate) => Promise<ResourceStatus[]>

export interface ConfigSourceStatus {
  connected: boolean
  /** `file:PATH` or the controller URL */
  source: string
  lastError?: string
  version?: number
}

export interface ConfigSource {
  readonly kind: 'controller' | 'static' | 'store'
  close(): Promise<void>
  /** Statuses changed without a new version (a listener bound on retry): tell the source's peer. */
  report(resources: ResourceStatus[]): void
  /** one more message to the controller (this agent's hub attachments); dropped while disconnected */
  send?(message: AgentMessage): void
  /** Start delivering configurations; resolves once started (not necessarily after the first one). */
  start(apply: ApplyConfig, events: ConfigSourceEvents): Promise<void>
  status(): ConfigSourceStatus
}

/** What a source needs from the agent, and how it reports trouble. */
export interface ConfigSourceEvents {
  /** the agent's identity name (the controller stream's `subscribe.agent`) */
  agent: string
  /** the HBONE address other agents should dial */
  hbone: string
  /** the current identity (it changes when the certificate renews) */
  identity: () => IdentityFile
  /** a configuration could not be read or applied, or the source lost its connection; the agent keeps its last one */
  onError: (message: string) => void
  /** the source connected or disconnected; `error` says why it lost the connection */
  onState?: (state: string, error?: string) => void
  /** the agent's software version, told to the controller */
  software?: string
}

/** Parse a static configuration file: a ConfigSnapshot, or `{version, resources: ConfigSnapshot}`. */
export function parseStaticConfig(text: string, file: string): ConfigUpdate {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new ZtError('ZT_ERR_CONFIG', `${file} is not valid JSON: ${(error as Error).message}`, {
      suggestion: 'pass a JSON ConfigSnapshot (see docs/hbone.md "Static configuration")',
    })
  }

  const wrapped = typeof value === 'object' && value !== null && 'resources' in value
  const resources = wrapped ? (value as {resources: unknown}).resources : value
  const version = wrapped ? Number((value as {version?: unknown}).version ?? 1) : 1
  try {
    return {snapshot: validateSnapshot(resources), version: Number.isSafeInteger(version) ? version : 1}
  } catch (error) {
    if (ZtError.is(error)) throw new ZtError(error.code, `${file}: ${error.message}`, {suggestion: 'fix the file; see docs/hbone.md "Static configuration"'})
    throw error
  }
}

/** A JSON file, re-read when it changes (so tests and operators can change config live). */
export class StaticConfigSource implements ConfigSource {
  readonly kind = 'static'
  private watcher?: FSWatcher
  private debounce?: NodeJS.Timeout
  private lastVersion = 0
  private lastError?: string

  constructor(private readonly file: string) {}

  async start(apply: ApplyConfig, events: ConfigSourceEvents): Promise<void> {
    const first = await this.read()
    await apply(this.nextVersion(first))
    // Watch the folder, not the file: an atomic rewrite (temp file + rename) replaces the inode.
    const name = path.basename(this.file)
    this.watcher = watch(path.dirname(this.file), {persistent: false}, (_event, changed) => {
      if (changed !== null && changed !== name) return
      if (this.debounce) clearTimeout(this.debounce)
      this.debounce = setTimeout(() => void this.reload(apply, events), 50)
      this.debounce.unref()
    })
    this.watcher.on('error', (error) => events.onError(`watching ${this.file}: ${error.message}`))
  }

  status(): ConfigSourceStatus {
    return {connected: true, lastError: this.lastError, source: `file:${this.file}`, version: this.lastVersion}
  }

  /** A file has no one to tell: the agent's log and /config_dump carry the statuses. */
  report(): void {}

  async close(): Promise<void> {
    if (this.debounce) clearTimeout(this.debounce)
    this.watcher?.close()
  }

  private async read(): Promise<ConfigUpdate> {
    let text: string
    try {
      text = await readFile(this.file, 'utf8')
    } catch (error) {
      throw new ZtError('ZT_ERR_CONFIG', `cannot read ${this.file}: ${(error as Error).message}`, {exit: ExitCode.notFound, suggestion: 'check the --config path'})
    }

    return parseStaticConfig(text, this.file)
  }

  /** File versions are not guaranteed to increase across edits; keep ours strictly increasing. */
  private nextVersion(update: ConfigUpdate): ConfigUpdate {
    this.lastVersion = Math.max(this.lastVersion + 1, update.version)
    return {...update, version: this.lastVersion}
  }

  private async reload(apply: ApplyConfig, events: ConfigSourceEvents): Promise<void> {
    try {
      await apply(this.nextVersion(await this.read()))
      this.lastError = undefined
    } catch (error) {
      this.lastError = (error as Error).message
      events.onError(this.lastError)
    }
  }
}

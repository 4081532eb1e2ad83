// The agent side of the config stream: subscribe, apply snapshots and deltas to a local copy, ack each
// version with the status of its resources (nack only a version that could not be taken at all), re-ack
// when a status changes, and reconnect with bounded exponential backoff, resuming from the last
// applied version. Garbage from the controller ends the connection, never the process.
import type {ClientHttp2Stream} from 'node:http2'

import {
  type AgentMessage, applyChanges, type Change, type ConfigSnapshot, type ControllerMessage, emptySnapshot, MAX_ACK_STATUSES, MAX_SNAPSHOT_PARTS,
  MAX_STREAM_LINE_BYTES, RESOURCE_KINDS, type ResourceStatus,
} from '../config/types.js'
import {LineSplitter, parseJsonObject} from '../controller/ndjson.js'
import type {IdentityFile} from '../identity/file.js'
import {ControllerClient} from './controller-client.js'

export type StreamState = 'connected' | 'connecting' | 'disconnected' | 'closed'

export interface SubscribeConfigOptions {
  agent: string
  /** `host:port` other agents dial for HBONE */
  hbone: string
  /** the identity to authenticate with; a function lets a CertificateRenewer hand over fresh certs */
  identity: (() => IdentityFile) | IdentityFile
  maxBackoffMs?: number
  minBackoffMs?: number
  /**
   * Apply a configuration; resolves with the status of the resources it acts on or could not apply (sent
   * in the ack). Throwing nacks the version: it was not taken at all. `changes` is set for deltas.
   */
  onConfig(snapshot: ConfigSnapshot, version: number, changes?: Change[]): Promise<ResourceStatus[] | void> | ResourceStatus[] | void
  onState?(state: StreamState, error?: unknown): void
  /** resume from this version (the last one applied before a restart) */
  since?: number
  /** the agent's software version, told to the controller when subscribing */
  software?: string
}

export interface ConfigSubscription {
  close(): void
  /** Statuses changed without a new version (a listener bound later): ack the current version again. */
  report(resources: ResourceStatus[]): void
  /** one more message to the controller (hub attachments); dropped when not connected, resent by the caller on change */
  send(message: AgentMessage): void
  /** the last version applied */
  readonly version: number | undefined
}

export function subscribeConfig(options: SubscribeConfigOptions): ConfigSubscription {
  const subscription = new ConfigStream(options)
  subscription.connectAndRetry()
  return subscription
}

type Send = (message: object) => void
type SnapshotMessage = Extract<ControllerMessage, {type: 'snapshot'}>
type DeltaMessage = Extract<ControllerMessage, {type: 'delta'}>

/** One subscription across its reconnects: the local copy, the version applied, the stream of the moment. */
class ConfigStream implements ConfigSubscription {
  private snapshot: ConfigSnapshot | undefined
  private applied: number | undefined
  private closed = false
  private failures = 0
  private timer: NodeJS.Timeout | undefined
  private client: ControllerClient | undefined
  private stream: ClientHttp2Stream | undefined
  private sendCurrent: Send | undefined
  // the parts of a snapshot received so far (the controller sends nothing else until its last part)
  private assembling: {parts: number; resources: ConfigSnapshot; version: number} | undefined
  /** the last report, sent again on every (re)connect */
  private lastReport: AgentMessage | undefined

  constructor(private readonly options: SubscribeConfigOptions) {
    this.applied = options.since
  }

  get version(): number | undefined {
    return this.applied
  }

  report(resources: ResourceStatus[]): void {
    if (this.applied !== undefined && !this.closed) this.sendCurrent?.(ack(this.applied, resources))
  }

  close(): void {
    this.closed = true
    clearTimeout(this.timer)
    this.stream?.destroy()
    this.client?.close()
    this.state('closed')
  }

  send(message: AgentMessage): void {
    this.lastReport = message
    if (this.stream && !this.stream.destroyed) this.stream.write(JSON.stringify(message) + '\n')
  }

  /** Connect; when the stream ends, connect again after a backoff (until close). */
  connectAndRetry(): void {
    if (this.closed) return
    this.connect()
      .then(() => this.state('disconnected'), (error: unknown) => this.state('disconnected', error))
      .finally(() => {
        this.stream?.destroy()
        this.client?.close()
        if (this.closed) return
        this.failures++
        this.timer = setTimeout(() => this.connectAndRetry(), this.backoffMs())
        this.timer.unref()
      })
  }

  /** Bounded exponential backoff with jitter: half the base plus up to half again. */
  private backoffMs(): number {
    const minBackoffMs = this.options.minBackoffMs ?? 500
    const maxBackoffMs = this.options.maxBackoffMs ?? 30_000
    const base = Math.min(maxBackoffMs, minBackoffMs * 2 ** Math.min(this.failures - 1, 20))
    return Math.round(base / 2 + Math.random() * (base / 2))
  }

  private async connect(): Promise<void> {
    this.state('connecting')
    const identity = typeof this.options.identity === 'function' ? this.options.identity() : this.options.identity
    this.client = ControllerClient.fromIdentity(identity)
    const stream = await this.client.openStream('/v1/config/stream')
    this.stream = stream
    this.subscribe(stream)
    const send: Send = (message) => {
      if (!stream.destroyed) stream.write(JSON.stringify(message) + '\n')
    }

    this.sendCurrent = send
    await this.read(stream, send)
  }

  /** The subscribe line (and the last report) on a new stream. */
  private subscribe(stream: ClientHttp2Stream): void {
    // Without a snapshot we cannot apply deltas: ask for everything.
    const since = this.snapshot ? this.applied : undefined
    this.assembling = undefined
    stream.write(JSON.stringify({agent: this.options.agent, hbone: this.options.hbone, since, type: 'subscribe', version: this.options.software}) + '\n')
    if (this.lastReport) stream.write(JSON.stringify(this.lastReport) + '\n')
  }

  /** Handle the stream's messages until it ends; a refusal or garbage throws. */
  private async read(stream: ClientHttp2Stream, send: Send): Promise<void> {
    const splitter = new LineSplitter(MAX_STREAM_LINE_BYTES)
    let status = 0
    stream.on('response', (headers) => {
      status = Number(headers[':status'])
      if (status === 200) {
        this.failures = 0
        this.state('connected')
      }
    })
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (this.closed) break
      if (status !== 200) throw new Error(`the controller refused the config stream (status ${status}): ${chunk.toString('utf8').slice(0, 512)}`)
      for (const line of splitter.push(chunk)) {
        const message = parseJsonObject(line) as ControllerMessage | undefined
        if (!message) throw new Error('the controller sent a line that is not a JSON message')
        await this.handle(message, send)
      }
    }

    if (status !== 200 && !this.closed) throw new Error(`the controller refused the config stream (status ${status})`)
  }

  private async handle(message: ControllerMessage, send: Send): Promise<void> {
    switch (message.type) {
      case 'snapshot': {
        return this.takeSnapshot(message, send)
      }

      case 'delta': {
        return this.takeDelta(message, send)
      }

      case 'error': {
        throw Object.assign(new Error(`controller: ${message.error?.message}`), {code: message.error?.code})
      }

      default: {
        throw new Error('the controller sent an unknown message type')
      }
    }
  }

  private async takeSnapshot(message: SnapshotMessage, send: Send): Promise<void> {
    const next = this.assemble(message)
    if (!next) return
    await this.apply(send, message.version, () => this.options.onConfig(next, message.version), () => {
      this.snapshot = next
    })
  }

  /** The whole snapshot once MESSAGE is its last part, else undefined (the part is kept). */
  private assemble(message: SnapshotMessage): ConfigSnapshot | undefined {
    if (this.assembling && this.assembling.version !== message.version) throw new Error(`a snapshot part of version ${message.version} while version ${this.assembling.version} was incomplete`)
    if (!this.assembling && message.more !== true) return message.resources as ConfigSnapshot // one part: checked as a whole by onConfig
    this.assembling ??= {parts: 0, resources: emptySnapshot(), version: message.version}
    if (++this.assembling.parts > MAX_SNAPSHOT_PARTS) throw new Error(`a snapshot in more than ${MAX_SNAPSHOT_PARTS} parts`)
    mergeSnapshotPart(this.assembling.resources, message.resources)
    if (message.more === true) return undefined
    const whole = this.assembling.resources
    this.assembling = undefined
    return whole
  }

  private async takeDelta(message: DeltaMessage, send: Send): Promise<void> {
    if (this.assembling) throw new Error(`a delta while snapshot version ${this.assembling.version} was incomplete`)
    const {snapshot} = this
    if (!snapshot || message.from !== this.applied) throw new Error(`a delta from ${message.from} does not follow version ${this.applied}`)
    // Copy on write: only the tables the delta touches are copied (a workload change does not copy the policies).
    const next: ConfigSnapshot = {...snapshot}
    for (const kind of new Set(message.changes.map((change) => change.kind))) (next as Record<string, unknown>)[kind] = {...snapshot[kind]}
    applyChanges(next, message.changes)
    await this.apply(send, message.version, () => this.options.onConfig(next, message.version, message.changes), () => {
      this.snapshot = next
    })
  }

  /** RUN (onConfig) for version NEXT: ack with its statuses and COMMIT, or nack when it throws. */
  private async apply(send: Send, next: number, run: () => Promise<ResourceStatus[] | void> | ResourceStatus[] | void, commit: () => void): Promise<void> {
    let resources: ResourceStatus[] | void
    try {
      resources = await run()
    } catch (error) {
      send({error: String((error as Error)?.message ?? error).slice(0, 1024), type: 'nack', version: next})
      return
    }

    commit()
    this.applied = next
    send(ack(next, resources))
  }

  private state(next: StreamState, error?: unknown): void {
    try {
      this.options.onState?.(next, error)
    } catch {
      // a listener's bug must not stop the stream
    }
  }
}

function ack(next: number, resources: ResourceStatus[] | void): object {
  return {
    // Errors first: when an agent acts on more than an ack carries, its failures are what must get through.
    resources: [...(resources ?? [])].sort((a, b) => Number(b.state === 'error') - Number(a.state === 'error')).slice(0, MAX_ACK_STATUSES),
    type: 'ack',
    version: next,
  }
}

/** Add a snapshot part's entries to TARGET (known kinds only; a part is input from the network). */
function mergeSnapshotPart(target: ConfigSnapshot, part: unknown): void {
  if (typeof part !== 'object' || part === null || Array.isArray(part)) throw new Error('a snapshot whose resources are not an object')
  for (const kind of RESOURCE_KINDS) {
    const table = (part as Record<string, unknown>)[kind]
    if (table === undefined) continue
    if (typeof table !== 'object' || table === null || Array.isArray(table)) throw new Error(`a snapshot whose "${kind}" is not a map`)
    const into = target[kind] as Record<string, unknown>
    for (const [key, value] of Object.entries(table)) if (key !== '__proto__') into[key] = value
  }
}

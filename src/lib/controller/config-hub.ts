// The server side of the config stream (see src/lib/config/types.ts for the protocol). One
// AgentStream per connection: it waits for `subscribe`, sends a snapshot or the deltas since `since`,
// then a delta after commits, in order, and records acks. Fan-out is shared: after a commit the hub
// pushes at most once per FLUSH_INTERVAL_MS, and every stream at the same version gets the same bytes
// (config-feed.ts serializes each delta and snapshot once). Garbage from the agent gets one `error`
// message and the stream is closed; it never takes the controller down.
import {
  type AgentMessage, type ControllerMessage, type HubAttachment, MAX_ACK_STATUSES, MAX_AGENT_LINE_BYTES, MAX_HUBS, MAX_STATUS_REASON, RESOURCE_KINDS, type ResourceStatus,
} from '../config/types.js'
import {ConfigFeed, type FeedLines} from './config-feed.js'
import type {Logger} from './logger.js'
import {LineSplitter, parseJsonObject} from './ndjson.js'
import type {Principal, Store} from './store/store.js'

/** A reader this far behind (beyond the snapshot it was sent) is cut off; it resumes from its last ack when it reconnects. */
const MAX_UNSENT_BYTES = 64 * 1024 * 1024
/**
 * Commits closer together than this reach agents as one delta: an isolated change goes out at once, a
 * burst costs at most one fan-out per interval. The interval grows with the fan-out (270 ms at 1,000
 * streams): a subscribe storm commits one agent resource per agent, and each fan-out makes every agent
 * ack, so a fixed interval would cost O(agents²) writes and acks before the storm is over.
 */
const FLUSH_INTERVAL_MS = 20
const FLUSH_MS_PER_STREAM = 0.25
/** The first message must come quickly, so idle half-open streams cannot pile up. */
const SUBSCRIBE_TIMEOUT_MS = 10_000
const HBONE_ADDRESS = /^(\[[0-9a-fA-F:.]+\]|[\w.-]+):\d{1,5}$/

/** The request half of the stream (an Http2ServerRequest fits). */
export type StreamInput = AsyncIterable<Buffer> & {destroy(): unknown}

/** The response half of the stream as the server hands it over (an Http2ServerResponse fits). */
export interface StreamOutput {
  destroyed?: boolean
  end(): unknown
  on(event: 'close', listener: () => void): unknown
  write(chunk: string | Uint8Array): boolean
  readonly writableLength: number
}

export class ConfigHub {
  private readonly streams = new Set<AgentStream>()
  /** subscribed streams per agent name: GET /v1/agents asks about every agent, so no scan of all streams per agent */
  private readonly online = new Map<string, Set<AgentStream>>()
  private readonly feed: ConfigFeed
  private readonly stopWatching: () => void
  private flushTimer?: NodeJS.Timeout
  private lastFlush = 0
  private latest = -1

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
  ) {
    this.feed = new ConfigFeed(store)
    this.stopWatching = store.onCommit((version) => this.committed(version))
  }

  /** Serve one stream until either side closes it. */
  attach(input: StreamInput, output: StreamOutput, principal: Principal): void {
    const stream: AgentStream = new AgentStream({feed: this.feed, logger: this.logger, store: this.store}, input, output, principal, {
      done: () => {
        this.streams.delete(stream)
        if (stream.agent !== undefined) this.unsubscribed(stream.agent, stream)
      },
      subscribed: (agent) => this.online.set(agent, (this.online.get(agent) ?? new Set()).add(stream)),
    })
    this.streams.add(stream)
    stream.run()
  }

  isOnline(agent: string): boolean {
    return this.online.has(agent)
  }

  /** What a connected agent last reported about its hubs (in memory: attachments are live state). */
  hubsOf(agent: string): HubAttachment[] | undefined {
    for (const stream of this.online.get(agent) ?? []) if (stream.hubs) return stream.hubs
    return undefined
  }

  /** Cut the streams of a revoked identity. */
  disconnectIdentity(name: string): void {
    for (const stream of this.streams) {
      if (stream.identity === name) stream.fail('ZT_ERR_REVOKED', `identity "${name}" was revoked`)
    }
  }

  close(): void {
    this.stopWatching()
    clearTimeout(this.flushTimer)
    for (const stream of this.streams) stream.close()
  }

  private unsubscribed(agent: string, stream: AgentStream): void {
    const streams = this.online.get(agent)
    streams?.delete(stream)
    if (streams?.size === 0) this.online.delete(agent)
  }

  private committed(version: number): void {
    this.latest = Math.max(this.latest, version)
    if (this.flushTimer) return
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined
      this.lastFlush = Date.now()
      for (const stream of this.streams) stream.pushTo(this.latest)
    }, Math.max(0, this.lastFlush + FLUSH_INTERVAL_MS + this.streams.size * FLUSH_MS_PER_STREAM - Date.now()))
    this.flushTimer.unref()
  }
}

interface StreamServices {
  feed: ConfigFeed
  logger: Logger
  store: Store
}

interface StreamEvents {
  done(): void
  subscribed(agent: string): void
}

class AgentStream {
  agent?: string
  hubs?: HubAttachment[]
  readonly identity: string
  private closed = false
  private pushing?: Promise<void>
  private sentVersion = -1
  /** the newest version this stream should reach */
  private wanted = -1
  /** bytes of the last snapshot written (the slow-consumer limit comes on top) */
  private snapshotBytes = 0
  private readonly store: Store
  private readonly logger: Logger

  constructor(
    private readonly services: StreamServices,
    private readonly input: StreamInput,
    private readonly output: StreamOutput,
    private readonly principal: Principal,
    private readonly events: StreamEvents,
  ) {
    this.identity = principal.identity.name
    this.store = services.store
    this.logger = services.logger
    output.on('close', () => this.close())
  }

  run(): void {
    const timer = setTimeout(() => {
      if (this.agent === undefined) this.fail('ZT_ERR_BAD_REQUEST', 'no subscribe message within 10 s')
    }, SUBSCRIBE_TIMEOUT_MS)
    timer.unref()
    this.readLoop()
      .catch((error: unknown) => {
        const message = error instanceof Error ? error.message : String(error)
        this.fail((error as {code?: string}).code?.startsWith('ZT_ERR_') ? (error as {code: string}).code : 'ZT_ERR_PROTOCOL', message)
      })
      .finally(() => {
        clearTimeout(timer)
        this.close()
      })
  }

  private async readLoop(): Promise<void> {
    const splitter = new LineSplitter(MAX_AGENT_LINE_BYTES)
    for await (const chunk of this.input) {
      for (const line of splitter.push(chunk)) {
        if (this.closed) return
        await this.handle(line)
      }
    }
  }

  private async handle(line: string): Promise<void> {
    const message = parseJsonObject(line) as AgentMessage | undefined
    if (!message || typeof message.type !== 'string') throw protocolError('a line on the config stream is not a JSON message')
    if (this.agent === undefined) {
      if (message.type !== 'subscribe') throw protocolError('the first message must be "subscribe"')
      await this.subscribe(message)
      return
    }

    switch (message.type) {
      case 'ack': {
        if (!isVersion(message.version) || message.version > this.sentVersion) throw protocolError('ack of a version that was never sent')
        const resources = checkStatuses(message.resources)
        await this.store.recordAgentStatus({ackedVersion: message.version, connected: true, lastSeen: new Date().toISOString(), name: this.agent, resources})
        const errors = resources.filter((status) => status.state === 'error')
        if (errors.length > 0) this.logger.warn({agent: this.agent, errors: errors.slice(0, 10), version: message.version}, 'agent could not apply some resources')
        return
      }

      case 'nack': {
        this.logger.warn({agent: this.agent, error: String(message.error).slice(0, 1024), version: message.version}, 'agent rejected a config version')
        await this.store.recordAgentStatus({connected: true, lastSeen: new Date().toISOString(), name: this.agent})
        return
      }

      case 'hubs': {
        this.hubs = checkHubs(message.hubs)
        return
      }

      default: {
        throw protocolError(`unexpected message type ${JSON.stringify(String(message.type).slice(0, 64))}`)
      }
    }
  }

  private async subscribe(message: Extract<AgentMessage, {type: 'subscribe'}>): Promise<void> {
    const {agent, hbone, since, version} = message
    if (agent !== this.identity) {
      throw Object.assign(protocolError(`identity "${this.identity}" cannot subscribe as agent ${JSON.stringify(String(agent).slice(0, 64))}`), {code: 'ZT_ERR_FORBIDDEN'})
    }

    // '': an agent that accepts no connection (`agent run --no-listen`), reached through hubs
    if (typeof hbone !== 'string' || (hbone !== '' && !HBONE_ADDRESS.test(hbone))) throw protocolError('"hbone" must be host:port or ""')
    if (since !== undefined && !isVersion(since)) throw protocolError('"since" must be a version number')
    if (version !== undefined && (typeof version !== 'string' || version.length > 64)) throw protocolError('"version" must be a short string')
    this.agent = agent
    // Other agents learn where to dial this one through its `agent` resource; a hub is no agent.
    if (!this.principal.identity.roles.includes(HUB_ROLE)) await this.store.putResource('agent', agent, {hbone, name: agent, spiffe: this.principal.identity.spiffe})
    await this.store.recordAgentStatus({connected: true, lastSeen: new Date().toISOString(), name: agent, software: version})
    this.logger.info({agent, hbone, since, version}, 'agent subscribed')
    this.events.subscribed(agent)
    // The agent resumes from `since` when it has one: a delta, or nothing when it is up to date (a
    // version this controller never reached gets a snapshot).
    const current = await this.store.currentVersion()
    if (since !== undefined && since <= current) this.sentVersion = since
    this.pushTo(current)
    await this.pushing
  }

  /** Bring the agent to VERSION (or later): one push at a time, in order; later requests wait for it. */
  pushTo(version: number): void {
    if (this.closed || this.agent === undefined) return
    this.wanted = Math.max(this.wanted, version)
    if (this.pushing || this.sentVersion >= this.wanted) return
    const from = this.sentVersion
    this.pushing = this.sendFrom(from, this.wanted)
      .catch((error: unknown) => this.fail('ZT_ERR_INTERNAL', (error as Error).message))
      .finally(() => {
        this.pushing = undefined
        if (this.sentVersion > from) this.pushTo(this.wanted)
      })
  }

  /** Send what the agent lacks after `since`: a delta when the log reaches back, else a (recent) snapshot and the delta from it. */
  private async sendFrom(since: number, current: number): Promise<void> {
    const {feed} = this.services
    const delta = since < 0 ? null : await feed.delta(since, current)
    if (delta !== null) {
      if (delta) this.send(delta)
      return
    }

    const snapshot = await feed.snapshotLines(current)
    this.snapshotBytes = snapshot.lines.reduce((sum, line) => sum + line.length, 0)
    this.send(snapshot)
    const rest = await feed.delta(snapshot.version, current)
    if (rest) this.send(rest)
  }

  private send(lines: FeedLines): void {
    if (this.closed) return
    if (this.output.writableLength > MAX_UNSENT_BYTES + this.snapshotBytes) {
      this.fail('ZT_ERR_SLOW_CONSUMER', 'the agent reads the config stream too slowly')
      return
    }

    for (const line of lines.lines) this.output.write(line)
    this.sentVersion = lines.version
  }

  private sendMessage(message: ControllerMessage): void {
    if (!this.closed) this.output.write(JSON.stringify(message) + '\n')
  }

  fail(code: string, message: string): void {
    if (this.closed) return
    this.logger.warn({agent: this.agent, code, identity: this.identity, message}, 'config stream closed on error')
    this.sendMessage({error: {code, message}, type: 'error'})
    this.close()
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    if (this.agent) {
      this.store.recordAgentStatus({connected: false, lastSeen: new Date().toISOString(), name: this.agent}).catch(() => {})
    }

    this.output.end()
    this.input.destroy()
    this.events.done()
  }
}

/** The role of a hub's identity (`ztctl hub run`): it reads the configuration but is not an agent. */
const HUB_ROLE = 'hub'
const HUB_STATES = new Set(['connected', 'connecting', 'down'])
const shortText = (value: unknown, max = 300): value is string => typeof value === 'string' && value.length <= max

/** A `hubs` report, shape-checked and bounded. */
function checkHubs(value: unknown): HubAttachment[] {
  if (!Array.isArray(value) || value.length > MAX_HUBS) throw protocolError(`"hubs" must be a list of at most ${MAX_HUBS} attachments`)
  return value.map((item: Record<string, unknown>) => {
    if (typeof item !== 'object' || item === null || !shortText(item.address) || !HUB_STATES.has(item.state as string)
      || !(Number.isSafeInteger(item.streams) && (item.streams as number) >= 0)
      || !(item.hub === undefined || shortText(item.hub)) || !(item.lastError === undefined || shortText(item.lastError, 1024))
      || !(item.rttMs === undefined || (typeof item.rttMs === 'number' && Number.isFinite(item.rttMs)))) {
      throw protocolError('a hub attachment needs address, state (connected|connecting|down), streams, and optional hub, rttMs, lastError')
    }

    return {address: item.address, hub: item.hub, lastError: item.lastError, rttMs: item.rttMs, state: item.state as HubAttachment['state'], streams: item.streams as number}
  })
}

/** An ack's statuses, checked (the stream is authenticated, but its content is still input). */
function checkStatuses(value: unknown): ResourceStatus[] {
  if (value === undefined) return []
  if (!Array.isArray(value) || value.length > MAX_ACK_STATUSES) throw protocolError(`"resources" must be a list of at most ${MAX_ACK_STATUSES} statuses`)
  return value.map((item: unknown) => {
    const {code, key, kind, reason, state} = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>
    const ok = (RESOURCE_KINDS as readonly unknown[]).includes(kind) && typeof key === 'string' && key.length <= 1024 && (state === 'applied' || state === 'error')
      && (reason === undefined || typeof reason === 'string') && (code === undefined || (typeof code === 'string' && code.length <= 64))
    if (!ok) throw protocolError('a resource status must be {kind, key, state: applied|error, reason?, code?}')
    return {
      ...(code === undefined ? {} : {code: code as string}), key: key as string, kind: kind as ResourceStatus['kind'],
      ...(reason === undefined ? {} : {reason: (reason as string).slice(0, MAX_STATUS_REASON)}), state: state as ResourceStatus['state'],
    }
  })
}

const isVersion = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0

function protocolError(message: string): Error & {code: string} {
  return Object.assign(new Error(message), {code: 'ZT_ERR_BAD_REQUEST'})
}

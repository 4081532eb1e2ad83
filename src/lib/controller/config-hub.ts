// The server side of the config stream (see src/lib/config/types.ts for the protocol). One
// AgentStream per connection: it waits for `subscribe`, sends a snapshot or the deltas since `since`,
// then pushes a delta after every commit, in order, and records acks. Garbage from the agent gets one
// `error` message and the stream is closed; it never takes the controller down.
import {
  type AgentMessage, type ControllerMessage, MAX_ACK_STATUSES, MAX_AGENT_LINE_BYTES, MAX_STATUS_REASON, RESOURCE_KINDS, type ResourceStatus,
} from '../config/types.js'
import type {Logger} from './logger.js'
import {LineSplitter, parseJsonObject} from './ndjson.js'
import type {Principal, Store} from './store/store.js'

/** A reader this far behind is cut off; it resumes from its last ack when it reconnects. */
const MAX_UNSENT_BYTES = 64 * 1024 * 1024
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
  write(chunk: string): boolean
  readonly writableLength: number
}

export class ConfigHub {
  private readonly streams = new Set<AgentStream>()

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
  ) {}

  /** Serve one stream until either side closes it. */
  attach(input: StreamInput, output: StreamOutput, principal: Principal): void {
    const stream = new AgentStream(this.store, this.logger, input, output, principal, () => this.streams.delete(stream))
    this.streams.add(stream)
    stream.run()
  }

  isOnline(agent: string): boolean {
    for (const stream of this.streams) if (stream.agent === agent) return true
    return false
  }

  /** Cut the streams of a revoked identity. */
  disconnectIdentity(name: string): void {
    for (const stream of this.streams) {
      if (stream.identity === name) stream.fail('ZT_ERR_REVOKED', `identity "${name}" was revoked`)
    }
  }

  close(): void {
    for (const stream of this.streams) stream.close()
  }
}

class AgentStream {
  agent?: string
  readonly identity: string
  private closed = false
  private pushing?: Promise<void>
  private pushAgain = false
  private sentVersion = -1
  private unsubscribe?: () => void

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly input: StreamInput,
    private readonly output: StreamOutput,
    private readonly principal: Principal,
    private readonly onDone: () => void,
  ) {
    this.identity = principal.identity.name
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

    if (typeof hbone !== 'string' || !HBONE_ADDRESS.test(hbone)) throw protocolError('"hbone" must be host:port')
    if (since !== undefined && !isVersion(since)) throw protocolError('"since" must be a version number')
    if (version !== undefined && (typeof version !== 'string' || version.length > 64)) throw protocolError('"version" must be a short string')
    this.agent = agent
    // Other agents learn where to dial this one through its `agent` resource.
    await this.store.putResource('agent', agent, {hbone, name: agent, spiffe: this.principal.identity.spiffe})
    await this.store.recordAgentStatus({connected: true, lastSeen: new Date().toISOString(), name: agent, software: version})
    this.logger.info({agent, hbone, since, version}, 'agent subscribed')
    this.unsubscribe = this.store.onCommit(() => this.schedulePush())
    await this.sendFrom(since)
  }

  private schedulePush(): void {
    if (this.closed) return
    if (this.pushing) {
      this.pushAgain = true
      return
    }

    this.pushing = this.sendFrom(this.sentVersion)
      .catch((error: unknown) => this.fail('ZT_ERR_INTERNAL', (error as Error).message))
      .finally(() => {
        this.pushing = undefined
        if (this.pushAgain) {
          this.pushAgain = false
          this.schedulePush()
        }
      })
  }

  /** Send what the agent lacks after `since`: deltas when the log reaches back, else a snapshot. */
  private async sendFrom(since: number | undefined): Promise<void> {
    const delta = since === undefined || since < 0 ? undefined : await this.store.changesSince(since)
    if (delta) {
      if (delta.version === since && this.sentVersion === since) return // nothing new
      this.send({changes: delta.changes, from: since!, type: 'delta', version: delta.version})
      this.sentVersion = delta.version
      return
    }

    const snapshot = await this.store.snapshot()
    this.send({resources: snapshot.resources, type: 'snapshot', version: snapshot.version})
    this.sentVersion = snapshot.version
  }

  private send(message: ControllerMessage): void {
    if (this.closed) return
    if (this.output.writableLength > MAX_UNSENT_BYTES) {
      this.fail('ZT_ERR_SLOW_CONSUMER', 'the agent reads the config stream too slowly')
      return
    }

    this.output.write(JSON.stringify(message) + '\n')
  }

  fail(code: string, message: string): void {
    if (this.closed) return
    this.logger.warn({agent: this.agent, code, identity: this.identity, message}, 'config stream closed on error')
    this.send({error: {code, message}, type: 'error'})
    this.close()
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.unsubscribe?.()
    if (this.agent) {
      this.store.recordAgentStatus({connected: false, lastSeen: new Date().toISOString(), name: this.agent}).catch(() => {})
    }

    this.output.end()
    this.input.destroy()
    this.onDone()
  }
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

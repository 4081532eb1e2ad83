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
  const minBackoffMs = options.minBackoffMs ?? 500
  const maxBackoffMs = options.maxBackoffMs ?? 30_000
  let snapshot: ConfigSnapshot | undefined
  let version = options.since
  let closed = false
  let failures = 0
  let timer: NodeJS.Timeout | undefined
  let client: ControllerClient | undefined
  let stream: ClientHttp2Stream | undefined
  let sendCurrent: ((message: object) => void) | undefined
  // the parts of a snapshot received so far (the controller sends nothing else until its last part)
  let assembling: {parts: number; resources: ConfigSnapshot; version: number} | undefined
  const ack = (next: number, resources: ResourceStatus[] | void): object => ({
    // Errors first: when an agent acts on more than an ack carries, its failures are what must get through.
    resources: [...(resources ?? [])].sort((a, b) => Number(b.state === 'error') - Number(a.state === 'error')).slice(0, MAX_ACK_STATUSES),
    type: 'ack',
    version: next,
  })
  /** the last report, sent again on every (re)connect */
  let lastReport: AgentMessage | undefined

  const state = (next: StreamState, error?: unknown): void => {
    try {
      options.onState?.(next, error)
    } catch {
      // a listener's bug must not stop the stream
    }
  }

  const connect = async (): Promise<void> => {
    state('connecting')
    const identity = typeof options.identity === 'function' ? options.identity() : options.identity
    client = ControllerClient.fromIdentity(identity)
    stream = await client.openStream('/v1/config/stream')
    const current = stream
    // Without a snapshot we cannot apply deltas: ask for everything.
    const since = snapshot ? version : undefined
    assembling = undefined
    stream.write(JSON.stringify({agent: options.agent, hbone: options.hbone, since, type: 'subscribe', version: options.software}) + '\n')
    if (lastReport) stream.write(JSON.stringify(lastReport) + '\n')
    const send = (message: object): void => {
      if (!current.destroyed) current.write(JSON.stringify(message) + '\n')
    }

    sendCurrent = send

    const splitter = new LineSplitter(MAX_STREAM_LINE_BYTES)
    let status = 0
    stream.on('response', (headers) => {
      status = Number(headers[':status'])
      if (status === 200) {
        failures = 0
        state('connected')
      }
    })
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (closed) break
      if (status !== 200) throw new Error(`the controller refused the config stream (status ${status}): ${chunk.toString('utf8').slice(0, 512)}`)
      for (const line of splitter.push(chunk)) {
        const message = parseJsonObject(line) as ControllerMessage | undefined
        if (!message) throw new Error('the controller sent a line that is not a JSON message')
        await handle(message, send)
      }
    }

    if (status !== 200 && !closed) throw new Error(`the controller refused the config stream (status ${status})`)
  }

  const handle = async (message: ControllerMessage, send: (message: object) => void): Promise<void> => {
    switch (message.type) {
      case 'snapshot': {
        if (assembling && assembling.version !== message.version) throw new Error(`a snapshot part of version ${message.version} while version ${assembling.version} was incomplete`)
        let next = message.resources as ConfigSnapshot // one part: checked as a whole by onConfig
        if (assembling || message.more === true) {
          assembling ??= {parts: 0, resources: emptySnapshot(), version: message.version}
          if (++assembling.parts > MAX_SNAPSHOT_PARTS) throw new Error(`a snapshot in more than ${MAX_SNAPSHOT_PARTS} parts`)
          mergeSnapshotPart(assembling.resources, message.resources)
          if (message.more === true) return
          next = assembling.resources
          assembling = undefined
        }

        await apply(send, message.version, () => options.onConfig(next, message.version), () => {
          snapshot = next
        })
        return
      }

      case 'delta': {
        if (assembling) throw new Error(`a delta while snapshot version ${assembling.version} was incomplete`)
        if (!snapshot || message.from !== version) throw new Error(`a delta from ${message.from} does not follow version ${version}`)
        // Copy on write: only the tables the delta touches are copied (a workload change does not copy the policies).
        const next: ConfigSnapshot = {...snapshot}
        for (const kind of new Set(message.changes.map((change) => change.kind))) (next as Record<string, unknown>)[kind] = {...snapshot[kind]}
        applyChanges(next, message.changes)
        await apply(send, message.version, () => options.onConfig(next, message.version, message.changes), () => {
          snapshot = next
        })
        return
      }

      case 'error': {
        throw Object.assign(new Error(`controller: ${message.error?.message}`), {code: message.error?.code})
      }

      default: {
        throw new Error('the controller sent an unknown message type')
      }
    }
  }

  const apply = async (send: (message: object) => void, next: number, run: () => Promise<ResourceStatus[] | void> | ResourceStatus[] | void, commit: () => void): Promise<void> => {
    let resources: ResourceStatus[] | void
    try {
      resources = await run()
    } catch (error) {
      send({error: String((error as Error)?.message ?? error).slice(0, 1024), type: 'nack', version: next})
      return
    }

    commit()
    version = next
    send(ack(next, resources))
  }

  const loop = (): void => {
    if (closed) return
    connect()
      .then(() => state('disconnected'), (error: unknown) => state('disconnected', error))
      .finally(() => {
        stream?.destroy()
        client?.close()
        if (closed) return
        failures++
        const base = Math.min(maxBackoffMs, minBackoffMs * 2 ** Math.min(failures - 1, 20))
        timer = setTimeout(loop, Math.round(base / 2 + Math.random() * (base / 2)))
        timer.unref()
      })
  }

  loop()
  return {
    report(resources) {
      if (version !== undefined && !closed) sendCurrent?.(ack(version, resources))
    },
    close() {
      closed = true
      clearTimeout(timer)
      stream?.destroy()
      client?.close()
      state('closed')
    },
    send(message) {
      lastReport = message
      if (stream && !stream.destroyed) stream.write(JSON.stringify(message) + '\n')
    },
    get version() {
      return version
    },
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

// Agent status on Kubernetes: one ConfigMap (ztctl-agent-status), one key per agent, holding its last
// acknowledged version, when it was last seen and which replica holds its config stream. Written
// behind (at most every flushMs, one merge patch for every agent that changed), because acks come per
// agent per change; it is not configuration, so no watch sees it and no revision moves. A replica
// heartbeats the agents it serves, so a replica that died without saying goodbye stops counting as
// their connection after STALE_MS; a replica that lost an agent to another one never overwrites the
// newer record (a JSON patch `test` guards its goodbye).
import type {CoreV1Api, V1ConfigMap} from '@kubernetes/client-node'

import type {KubeModule} from '../../kube/client.js'
import {isNotFound, kubeError, kubeStatus} from '../../kube/client.js'
import {RUNTIME_OBJECTS, ztctlLabels} from '../../kube/objects.js'
import type {Logger} from '../logger.js'
import type {AgentStatusRecord} from './store.js'

const HEARTBEAT_MS = 15_000
const STALE_MS = 45_000

/** What is kept per agent: the record's fields (any the Store adds: an undefined field keeps the stored value) and the replica. */
type StatusValue = Omit<AgentStatusRecord, 'name'> & {replica?: string}

export interface KubeAgentStatusOptions {
  core: CoreV1Api
  flushMs: number
  install: string
  k8s: KubeModule
  logger: Logger
  namespace: string
  /** who holds the streams (the pod name) */
  replica: string
}

export class KubeAgentStatus {
  private readonly known = new Map<string, StatusValue>()
  private pending = new Map<string, StatusValue>()
  /** the batch being written */
  private inflight = new Map<string, StatusValue>()
  /** the exact text this replica last wrote per agent: its goodbye only replaces that */
  private readonly written = new Map<string, string>()
  private readonly serving = new Set<string>()
  private flushTimer?: NodeJS.Timeout
  private flushing?: Promise<void>
  private readonly heartbeat: NodeJS.Timeout

  constructor(private readonly options: KubeAgentStatusOptions) {
    this.heartbeat = setInterval(() => {
      for (const name of this.serving) this.record({connected: true, lastSeen: new Date().toISOString(), name})
    }, HEARTBEAT_MS)
    this.heartbeat.unref()
  }

  record(status: AgentStatusRecord): void {
    const {name, ...fields} = status
    const next: StatusValue = {...this.known.get(name)}
    for (const [field, value] of Object.entries(fields)) if (value !== undefined) (next as Record<string, unknown>)[field] = value
    if (fields.connected !== undefined) {
      next.connected = fields.connected
      next.replica = fields.connected ? this.options.replica : undefined
      if (fields.connected) this.serving.add(name)
      else this.serving.delete(name)
    }

    this.known.set(name, next)
    this.pending.set(name, next)
    this.flushTimer ??= setTimeout(() => void this.flush(), this.options.flushMs)
    this.flushTimer.unref()
  }

  async list(): Promise<AgentStatusRecord[]> {
    const stored = await this.read()
    const values = new Map<string, StatusValue>()
    for (const [name, text] of Object.entries(stored?.data ?? {})) {
      const value = parse(text)
      if (value) values.set(name, value)
    }

    for (const [name, value] of [...this.inflight, ...this.pending]) values.set(name, value)
    const now = Date.now()
    return [...values.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, {replica: _replica, ...value}]) => ({
        ...value,
        connected: value.connected === true && value.lastSeen !== undefined && now - Date.parse(value.lastSeen) < STALE_MS,
        name,
      }))
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat)
    await this.flush()
  }

  private async flush(): Promise<void> {
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    await this.flushing
    const batch = this.pending
    if (batch.size === 0) return
    this.pending = new Map()
    this.inflight = batch
    this.flushing = this.write(batch).catch((error: unknown) => {
      // Keep what failed for the next flush, unless newer values replaced it meanwhile.
      for (const [name, value] of batch) if (!this.pending.has(name)) this.pending.set(name, value)
      this.options.logger.warn({err: kubeError(error, `write ConfigMap ${RUNTIME_OBJECTS.agentStatusConfigMap}`).message}, 'agent status not saved; retrying')
      this.flushTimer ??= setTimeout(() => void this.flush(), Math.max(1000, this.options.flushMs))
      this.flushTimer.unref()
    }).finally(() => {
      this.flushing = undefined
      this.inflight = new Map()
    })
    await this.flushing
  }

  private async write(batch: Map<string, StatusValue>): Promise<void> {
    const {namespace} = this.options
    const name = RUNTIME_OBJECTS.agentStatusConfigMap
    const updates: Record<string, string> = {}
    const goodbyes: [string, string][] = []
    for (const [agent, value] of batch) {
      const text = JSON.stringify(value)
      const previous = this.written.get(agent)
      if (value.connected === false && previous !== undefined) goodbyes.push([agent, text])
      else updates[agent] = text
    }

    if (Object.keys(updates).length > 0) {
      const {PatchStrategy, setHeaderOptions} = this.options.k8s
      const patch = () => this.options.core.patchNamespacedConfigMap({body: {data: updates}, name, namespace}, setHeaderOptions('Content-Type', PatchStrategy.MergePatch))
      try {
        await patch()
      } catch (error) {
        if (!isNotFound(error)) throw error
        const body: V1ConfigMap = {data: updates, metadata: {labels: ztctlLabels(this.options.install, 'controller'), name, namespace}}
        await this.options.core.createNamespacedConfigMap({body, namespace}).catch(async (created: unknown) => {
          if (kubeStatus(created) === 409) await patch()
          else throw created
        })
      }

      for (const [agent, text] of Object.entries(updates)) this.written.set(agent, text)
    }

    for (const [agent, text] of goodbyes) await this.sayGoodbye(agent, text)
  }

  /** Mark an agent disconnected, unless another replica wrote its record since we did (it serves it now). */
  private async sayGoodbye(agent: string, text: string): Promise<void> {
    const {PatchStrategy, setHeaderOptions} = this.options.k8s
    const path = `/data/${agent.replaceAll('~', '~0').replaceAll('/', '~1')}`
    try {
      await this.options.core.patchNamespacedConfigMap({
        body: [{op: 'test', path, value: this.written.get(agent)}, {op: 'replace', path, value: text}],
        name: RUNTIME_OBJECTS.agentStatusConfigMap,
        namespace: this.options.namespace,
      }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch))
      this.written.set(agent, text)
    } catch (error) {
      // 422: the test failed (someone else's record now), 404: nothing to say goodbye to.
      if (kubeStatus(error) !== 422 && !isNotFound(error)) throw error
      this.written.delete(agent)
    }
  }

  private async read(): Promise<undefined | V1ConfigMap> {
    try {
      return await this.options.core.readNamespacedConfigMap({name: RUNTIME_OBJECTS.agentStatusConfigMap, namespace: this.options.namespace})
    } catch (error) {
      if (isNotFound(error)) return undefined
      throw kubeError(error, `read ConfigMap ${RUNTIME_OBJECTS.agentStatusConfigMap}`)
    }
  }
}

function parse(text: string): StatusValue | undefined {
  try {
    const value = JSON.parse(text) as unknown
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as StatusValue) : undefined
  } catch {
    return undefined
  }
}

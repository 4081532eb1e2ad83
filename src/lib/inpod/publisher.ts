// Publishing the node's workloads to the controller (PUT/DELETE /v1/workloads/:uid): the local
// workload set is the truth, the `workload` resources of this node on the config stream are what the
// mesh knows. Each sync puts what is missing or different and deletes what is gone (also after an
// agent restart, when the stream still lists workloads this agent no longer serves). One sync runs at
// a time; requests during a sync coalesce into one more; failures retry with bounded backoff.
import type {WorkloadRecord} from '../config/types.js'

export type ControllerCall = (method: 'DELETE' | 'PUT', path: string, body?: unknown) => Promise<unknown>

export interface PublisherInputs {
  /** what this agent serves now */
  local: () => WorkloadRecord[]
  /** what the mesh currently lists for this node */
  published: () => WorkloadRecord[]
}

const MIN_RETRY_MS = 250
const MAX_RETRY_MS = 15_000

export class WorkloadPublisher {
  private running?: Promise<void>
  private again = false
  private retryMs = 0
  private timer?: NodeJS.Timeout
  private closed = false
  /** what we last sent per uid, so a lagging stream does not make us send it again and again */
  private readonly sent = new Map<string, string>()

  constructor(
    private readonly call: ControllerCall,
    private readonly inputs: PublisherInputs,
    private readonly onError: (message: string, fields: Record<string, unknown>) => void,
  ) {}

  /** Ask for a sync soon; returns when the sync that covers this request finished. */
  sync(): Promise<void> {
    if (this.closed) return Promise.resolve()
    if (this.running) {
      this.again = true
      return this.running
    }

    this.running = this.run().finally(() => {
      this.running = undefined
      if (this.again) {
        this.again = false
        void this.sync()
      }
    })
    return this.running
  }

  close(): void {
    this.closed = true
    clearTimeout(this.timer)
  }

  private async run(): Promise<void> {
    const local = new Map(this.inputs.local().map((record) => [record.uid, record]))
    const published = new Map(this.inputs.published().map((record) => [record.uid, record]))
    const failures: string[] = []
    for (const [uid, record] of local) {
      const text = JSON.stringify(record)
      const current = published.get(uid)
      if ((current && JSON.stringify(normalize(current)) === JSON.stringify(normalize(record))) || this.sent.get(uid) === text) continue
      await this.call('PUT', `/v1/workloads/${encodeURIComponent(uid)}`, {hbone: record.hbone, ips: record.ips, name: record.name, namespace: record.namespace, serviceAccount: record.serviceAccount})
        .then(() => this.sent.set(uid, text))
        .catch((error: unknown) => failures.push(`PUT ${uid}: ${(error as Error).message}`))
    }

    for (const uid of published.keys()) {
      if (local.has(uid)) continue
      await this.call('DELETE', `/v1/workloads/${encodeURIComponent(uid)}`)
        .catch((error: unknown) => {
          if ((error as {code?: string}).code !== 'ZT_ERR_NOT_FOUND') failures.push(`DELETE ${uid}: ${(error as Error).message}`)
        })
    }

    for (const uid of [...this.sent.keys()]) if (!local.has(uid)) this.sent.delete(uid)
    if (failures.length === 0) {
      this.retryMs = 0
      return
    }

    // Forget what failed so the retry sends it again.
    for (const uid of local.keys()) if (failures.some((failure) => failure.startsWith(`PUT ${uid}:`))) this.sent.delete(uid)
    this.retryMs = Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, this.retryMs * 2))
    this.onError('publishing workloads to the controller failed; retrying', {failures: failures.slice(0, 5), retryInMs: this.retryMs})
    clearTimeout(this.timer)
    this.timer = setTimeout(() => void this.sync(), this.retryMs)
    this.timer.unref()
  }
}

function normalize(record: WorkloadRecord): WorkloadRecord {
  return {hbone: record.hbone, ips: [...record.ips], name: record.name, namespace: record.namespace, node: record.node, serviceAccount: record.serviceAccount, uid: record.uid}
}

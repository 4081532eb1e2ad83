// Leader election with a coordination.k8s.io Lease, as client-go's leaderelection does: the holder
// renews every retry period; others take the Lease once it has not been renewed for its duration, as
// measured on their own clock since they last saw it change (no trust in other machines' clocks); a
// holder that cannot renew within the renew deadline steps down before anyone may take over. Every
// write carries a resourceVersion precondition, so two candidates never both win. Stopping releases
// the Lease, so a successor takes over at once instead of after the duration.
import type {CoordinationV1Api, V1Lease} from '@kubernetes/client-node'

import {isConflict, isNotFound, kubeError} from './client.js'

export interface LeaderElectorOptions {
  coordination: CoordinationV1Api
  /** this candidate (the pod name) */
  identity: string
  labels?: Record<string, string>
  leaseDurationMs?: number
  logger?: {info(object: object, message?: string): void; warn(object: object, message?: string): void}
  name: string
  namespace: string
  onStartedLeading(): void
  onStoppedLeading(): void
  renewDeadlineMs?: number
  retryPeriodMs?: number
}

/** MicroTime as the API server parses it (RFC 3339 with exactly six fractional digits). */
const microTime = (ms: number): string => new Date(ms).toISOString().replace(/Z$/, '000Z')
const timeOf = (value: unknown): string => (value instanceof Date ? value.toISOString() : String(value ?? ''))

export class LeaderElector {
  private leading = false
  private stopped = true
  private timer?: NodeJS.Timeout
  private observed?: {record: string; at: number}
  private lastRenewal = 0
  private readonly durationMs: number
  private readonly renewDeadlineMs: number
  private readonly retryMs: number

  constructor(private readonly options: LeaderElectorOptions) {
    this.durationMs = options.leaseDurationMs ?? 15_000
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000
    this.retryMs = options.retryPeriodMs ?? 2000
  }

  get isLeader(): boolean {
    return this.leading
  }

  start(): void {
    if (!this.stopped) return
    this.stopped = false
    void this.tick()
  }

  /** Stop competing; a leader releases the Lease (holder cleared) so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    if (!this.leading) return
    this.stepDown('stopping')
    try {
      const lease = await this.read()
      if (lease?.spec?.holderIdentity === this.options.identity) {
        await this.options.coordination.replaceNamespacedLease({
          body: {...lease, spec: {...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: microTime(Date.now()) as never}},
          name: this.options.name, namespace: this.options.namespace,
        })
      }
    } catch (error) {
      this.options.logger?.warn({err: kubeError(error, `release Lease ${this.options.name}`).message}, 'could not release the leader Lease; a successor waits for it to expire')
    }
  }

  private async tick(): Promise<void> {
    if (this.stopped) return
    let acquired = false
    try {
      acquired = await this.tryAcquireOrRenew()
    } catch (error) {
      this.options.logger?.warn({err: kubeError(error, `update Lease ${this.options.name}`).message}, 'leader election: Lease not updated')
    }

    if (this.stopped) return
    const now = Date.now()
    if (acquired) {
      this.lastRenewal = now
      if (!this.leading) {
        this.leading = true
        this.options.logger?.info({identity: this.options.identity, lease: this.options.name}, 'became the leader')
        this.options.onStartedLeading()
      }
    } else if (this.leading && now - this.lastRenewal >= this.renewDeadlineMs) {
      this.stepDown('could not renew the Lease within the renew deadline')
    }

    const jitter = this.leading ? 0 : Math.random() * this.retryMs * 0.2
    this.timer = setTimeout(() => void this.tick(), this.retryMs + jitter)
    this.timer.unref()
  }

  private stepDown(reason: string): void {
    if (!this.leading) return
    this.leading = false
    this.options.logger?.info({identity: this.options.identity, reason}, 'stopped leading')
    this.options.onStoppedLeading()
  }

  private async read(): Promise<undefined | V1Lease> {
    try {
      return await this.options.coordination.readNamespacedLease({name: this.options.name, namespace: this.options.namespace})
    } catch (error) {
      if (isNotFound(error)) return undefined
      throw error
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const {identity, name, namespace} = this.options
    const now = Date.now()
    const lease = await this.read()
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(this.durationMs / 1000),
      renewTime: microTime(now) as never,
    }
    if (!lease) {
      try {
        await this.options.coordination.createNamespacedLease({
          body: {metadata: {labels: this.options.labels, name, namespace}, spec: {...spec, acquireTime: microTime(now) as never, leaseTransitions: 0}},
          namespace,
        })
        return true
      } catch (error) {
        if (isConflict(error)) return false
        throw error
      }
    }

    const holder = lease.spec?.holderIdentity ?? ''
    const record = `${holder}|${timeOf(lease.spec?.renewTime)}|${lease.spec?.leaseDurationSeconds ?? ''}`
    if (this.observed?.record !== record) this.observed = {at: now, record}
    const durationMs = (lease.spec?.leaseDurationSeconds ?? Math.ceil(this.durationMs / 1000)) * 1000
    const mine = holder === identity
    if (!mine && holder !== '' && this.observed.at + durationMs > now) return false
    try {
      await this.options.coordination.replaceNamespacedLease({
        body: {
          ...lease,
          spec: {
            ...lease.spec,
            ...spec,
            acquireTime: (mine ? lease.spec?.acquireTime : microTime(now)) as never,
            leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + (mine ? 0 : 1),
          },
        },
        name, namespace,
      })
      return true
    } catch (error) {
      if (isConflict(error)) return false
      throw error
    }
  }
}

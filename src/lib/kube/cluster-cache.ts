// What the controller knows of the cluster (issue 12 §1): client-node informers (list, then watch from
// the list's resourceVersion; 410 Gone → relist) on namespaces, pods, services, endpoint slices and
// nodes. A watch that fails is restarted with bounded exponential backoff and jitter (client-node leaves
// a failed informer stopped). Nothing queues: an event only marks the view changed, and one listener
// call per burst (coalesced over `settleMs`) tells the owner to look at the caches again; a resync
// calls it every `resyncMs` all the same, so a missed event costs at most one period.
import type {KubernetesListObject, KubernetesObject, V1EndpointSlice, V1Namespace, V1Node, V1Pod, V1Service} from '@kubernetes/client-node'

import type {KubeClients} from './client.js'
import {kubeMessage, kubeStatus} from './client.js'
import type {ClusterView} from './workloads.js'

export type CachedKind = 'endpointslices' | 'namespaces' | 'nodes' | 'pods' | 'services'

interface CacheInformer<T extends KubernetesObject> {
  get(name: string, namespace?: string): T | undefined
  list(namespace?: string): T[]
  on(verb: 'add' | 'change' | 'delete' | 'update', cb: (object: T) => void): void
  on(verb: 'connect' | 'error', cb: (error?: unknown) => void): void
  start(): Promise<void>
  stop(): Promise<void>
}

export interface ClusterCacheOptions {
  clients: KubeClients
  onError?(kind: CachedKind, message: string, retryInMs: number): void
  /** coalesce a burst of events into one notification (default 20 ms) */
  settleMs?: number
  /** notify anyway this often (default 60 s) */
  resyncMs?: number
  minBackoffMs?: number
  maxBackoffMs?: number
}

export class ClusterCache implements ClusterView {
  private readonly informers = new Map<CachedKind, CacheInformer<KubernetesObject>>()
  /** consecutive failures (the backoff), and every error ever (did this start fail?) */
  private readonly failures = new Map<CachedKind, number>()
  private readonly errors = new Map<CachedKind, number>()
  private readonly listeners = new Set<() => void>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private settleTimer?: NodeJS.Timeout
  private resyncTimer?: NodeJS.Timeout
  private stopped = false
  private readonly listed = new Set<CachedKind>()
  private markSynced!: () => void
  private readonly allListed = new Promise<void>((resolve) => {
    this.markSynced = resolve
  })

  constructor(private readonly options: ClusterCacheOptions) {}

  /** Start every informer (in the background: a failing one retries; see synced()). */
  async start(): Promise<void> {
    const {clients} = this.options
    const {core, custom, kc, k8s} = clients
    const slicesVersion = await endpointSliceVersion(clients)
    const lists: Record<CachedKind, {list: () => Promise<KubernetesListObject<KubernetesObject>>; path: string}> = {
      endpointslices: {
        list: () => custom.listClusterCustomObject({group: 'discovery.k8s.io', plural: 'endpointslices', version: slicesVersion}) as Promise<KubernetesListObject<V1EndpointSlice>>,
        path: `/apis/discovery.k8s.io/${slicesVersion}/endpointslices`,
      },
      namespaces: {list: () => core.listNamespace(), path: '/api/v1/namespaces'},
      nodes: {list: () => core.listNode(), path: '/api/v1/nodes'},
      pods: {list: () => core.listPodForAllNamespaces(), path: '/api/v1/pods'},
      services: {list: () => core.listServiceForAllNamespaces(), path: '/api/v1/services'},
    }
    for (const [kind, {list, path}] of Object.entries(lists) as [CachedKind, (typeof lists)[CachedKind]][]) {
      const informer = k8s.makeInformer(kc, path, list) as unknown as CacheInformer<KubernetesObject>
      this.informers.set(kind, informer)
      informer.on('change', () => {
        this.failures.set(kind, 0)
        this.changed()
      })
      informer.on('error', (error) => this.restart(kind, informer, error))
      this.run(kind, informer)
    }

    this.scheduleResync()
  }

  /** Resolves once every informer has listed once (its cache is complete). */
  synced(): Promise<void> {
    return this.allListed
  }

  get isSynced(): boolean {
    return this.listed.size === this.informers.size && this.informers.size > 0
  }

  async stop(): Promise<void> {
    this.stopped = true
    for (const timer of this.timers) clearTimeout(timer)
    clearTimeout(this.settleTimer)
    clearTimeout(this.resyncTimer)
    await Promise.all([...this.informers.values()].map((informer) => informer.stop().catch(() => {})))
  }

  /** Call LISTENER (coalesced) after the caches changed, and once per resync period. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  namespace(name: string): undefined | V1Namespace {
    return this.informers.get('namespaces')?.get(name) as undefined | V1Namespace
  }

  pods(): V1Pod[] {
    return (this.informers.get('pods')?.list() ?? []) as V1Pod[]
  }

  pod(namespace: string, name: string): undefined | V1Pod {
    return this.informers.get('pods')?.get(name, namespace) as undefined | V1Pod
  }

  services(): V1Service[] {
    return (this.informers.get('services')?.list() ?? []) as V1Service[]
  }

  endpointSlices(): V1EndpointSlice[] {
    return (this.informers.get('endpointslices')?.list() ?? []) as V1EndpointSlice[]
  }

  nodes(): V1Node[] {
    return (this.informers.get('nodes')?.list() ?? []) as V1Node[]
  }

  /** start() resolves once the list is done and the watch started; a failed list comes back through 'error'. */
  private run(kind: CachedKind, informer: CacheInformer<KubernetesObject>): void {
    const errorsBefore = this.errors.get(kind) ?? 0
    informer.start().then(() => {
      if (this.stopped || (this.errors.get(kind) ?? 0) !== errorsBefore) return
      this.listed.add(kind)
      if (this.isSynced) this.markSynced()
      this.changed()
    }, (error: unknown) => this.restart(kind, informer, error))
  }

  private changed(): void {
    if (this.stopped || this.settleTimer) return
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined
      for (const listener of this.listeners) listener()
    }, this.options.settleMs ?? 20)
    this.settleTimer.unref()
  }

  private scheduleResync(): void {
    if (this.stopped) return
    this.resyncTimer = setTimeout(() => {
      this.changed()
      this.scheduleResync()
    }, this.options.resyncMs ?? 60_000)
    this.resyncTimer.unref()
  }

  /** client-node stops an informer on a failed list or watch: start it again after a bounded backoff. */
  private restart(kind: CachedKind, informer: CacheInformer<KubernetesObject>, error: unknown): void {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1)
    if (this.stopped) return
    const failures = (this.failures.get(kind) ?? 0) + 1
    this.failures.set(kind, failures)
    const min = this.options.minBackoffMs ?? 200
    const max = this.options.maxBackoffMs ?? 10_000
    const base = Math.min(max, min * 2 ** Math.min(failures - 1, 16))
    const delay = Math.round(base / 2 + Math.random() * (base / 2))
    this.options.onError?.(kind, kubeMessage(error), delay)
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      if (!this.stopped) this.run(kind, informer)
    }, delay)
    timer.unref()
    this.timers.add(timer)
  }
}

/** discovery.k8s.io/v1 from Kubernetes 1.21, v1beta1 before (the test cluster runs 1.20). */
async function endpointSliceVersion({custom}: Pick<KubeClients, 'custom'>): Promise<string> {
  try {
    await custom.listClusterCustomObject({group: 'discovery.k8s.io', limit: 1, plural: 'endpointslices', version: 'v1'})
    return 'v1'
  } catch (error) {
    if (kubeStatus(error) === 404) return 'v1beta1'
    throw error
  }
}

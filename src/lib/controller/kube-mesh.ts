// The cluster's pods in the mesh (issue 12 §1), on the controller: every replica keeps the informers'
// caches (any replica answers a node agent's certificate request, so each must know the pods on each
// node); the leader alone turns enrolled pods into `workload` resources. Reconciling compares the whole
// desired set with the store's, so a label added to a namespace with running pods enrolls them, a label
// removed (or the opt-out annotation, or a deleted pod) un-enrolls them, and a kubectl edit of a
// workload is put back; one reconcile runs at a time, a change meanwhile asks for exactly one more.
import type {V1Pod} from '@kubernetes/client-node'

import {ExitCode, ZtError} from '../errors.js'
import {ClusterCache} from '../kube/cluster-cache.js'
import type {KubeClients} from '../kube/client.js'
import {kubeError} from '../kube/client.js'
import {desiredWorkloads, podIps, podsOn, sameWorkload} from '../kube/workloads.js'
import {serialized} from '../util/serialized.js'
import type {Logger} from './logger.js'
import type {NodeAuthority, WorkloadClaim} from './node-authority.js'
import type {IdentityRecord, Store} from './store/store.js'

export interface KubeMeshOptions {
  clients: KubeClients
  /** the install namespace (never enrolled; where the node agents run) */
  namespace: string
  logger: Logger
  store: Store
  /** informer timing (tests shorten it) */
  cache?: {resyncMs?: number; settleMs?: number}
}

export interface KubeMesh {
  readonly cache: ClusterCache
  /** decides for node identities bound to a node (scope.node): the pods scheduled there */
  readonly authority: NodeAuthority
  /** the leader's part: publish workloads until stopLeading() */
  startLeading(): void
  stopLeading(): void
  /** one reconcile now (resolves when it is done); tests and the first round */
  reconcile(): Promise<void>
  close(): Promise<void>
}

export function startKubeMesh(options: KubeMeshOptions): KubeMesh {
  const {clients, logger, namespace, store} = options
  const cache = new ClusterCache({
    clients, ...options.cache,
    onError: (kind, message, retryInMs) => logger.warn({kind, message, retryInMs}, 'cluster watch failed; retrying'),
  })
  let leading = false
  const reconcile = serialized(() => publishWorkloads(cache, store, namespace, logger), (error) => {
    logger.warn({err: (error as Error).message}, 'publishing workloads failed; retrying at the next change or resync')
  })
  cache.onChange(() => {
    if (leading) void reconcile()
  })
  cache.start().catch((error: unknown) => logger.error({err: (error as Error).message}, 'cannot watch the cluster'))
  return {
    authority: podAuthority(cache, clients),
    cache,
    async close() {
      leading = false
      await reconcile.idle()
      await cache.stop()
    },
    reconcile: async () => {
      await cache.synced()
      await reconcile()
    },
    startLeading() {
      leading = true
      cache.synced().then(() => {
        if (leading) void reconcile()
      }, () => {})
    },
    stopLeading() {
      leading = false
      reconcile.cancel()
    },
  }
}

/** Make the store's workloads what the caches say (only once every informer has listed). */
async function publishWorkloads(cache: ClusterCache, store: Store, installNamespace: string, logger: Logger): Promise<void> {
  if (!cache.isSynced) return
  const desired = desiredWorkloads(cache, {installNamespace})
  const {items} = await store.listResources('workload')
  let puts = 0
  let deletes = 0
  for (const current of items) {
    if (desired.has(current.uid)) continue
    await store.deleteResource('workload', current.uid).catch((error: unknown) => {
      if ((error as ZtError).code !== 'ZT_ERR_NOT_FOUND') throw error
    })
    deletes++
  }

  const existing = new Map(items.map((item) => [item.uid, item]))
  for (const [uid, workload] of desired) {
    const current = existing.get(uid)
    if (current && sameWorkload(current, workload)) continue
    await store.putResource('workload', uid, workload)
    puts++
  }

  if (puts + deletes > 0) logger.info({deleted: deletes, published: puts, workloads: desired.size}, 'workloads reconciled')
}

const forbidden = (node: IdentityRecord, why: string): ZtError =>
  new ZtError('ZT_ERR_FORBIDDEN', `node agent "${node.name}" ${why}`, {
    exit: ExitCode.auth,
    suggestion: 'a node agent gets certificates and publishes workloads only for pods scheduled on its own node',
  })

/**
 * A node identity bound to node N (scope.node, from its ServiceAccount token) may serve CLAIM when a pod of
 * that namespace and service account (and uid, and addresses, when the claim names them) is scheduled on N.
 * The cache answers; when it knows no such pod (a pod scheduled a moment ago), one API read decides.
 */
function podAuthority(cache: ClusterCache, clients: Pick<KubeClients, 'core'>): NodeAuthority {
  const matches = (pod: V1Pod, claim: WorkloadClaim): boolean =>
    (claim.uid === undefined || pod.metadata?.uid === claim.uid)
    && (claim.name === undefined || pod.metadata?.name === claim.name)
    && (claim.ips ?? []).every((ip) => podIps(pod).includes(ip))
  return {
    async authorize(node, claim) {
      const nodeName = node.scope?.node
      if (!nodeName) throw forbidden(node, 'is not bound to a Kubernetes node')
      if (podsOn(cache.pods(), nodeName, claim.namespace, claim.serviceAccount).some((pod) => matches(pod, claim))) return
      let live: V1Pod[]
      try {
        const list = await clients.core.listNamespacedPod({fieldSelector: `spec.nodeName=${nodeName}`, namespace: claim.namespace})
        live = list.items
      } catch (error) {
        throw kubeError(error, `list the pods of ${claim.namespace} on node ${nodeName}`)
      }

      if (podsOn(live, nodeName, claim.namespace, claim.serviceAccount).some((pod) => matches(pod, claim))) return
      const subject = `${claim.namespace}/${claim.serviceAccount}${claim.name ? ` (pod ${claim.name})` : ''}`
      throw forbidden(node, `asked for ${subject}, which has no pod on node "${nodeName}"`)
    },
  }
}

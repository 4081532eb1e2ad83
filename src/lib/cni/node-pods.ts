// What the CNI agent reads from the API server: the pods of its node and their namespaces (to decide
// enrollment, src/lib/kube/enrollment.ts), and whether its own DaemonSet still exists (a DaemonSet being
// deleted is an uninstall: undo everything; otherwise a stop is a restart and pods stay redirected).
// Plain GET/LIST with a deadline: the agent's needs are one pod at a CNI ADD and one list per reconcile.
import type * as k8s from '@kubernetes/client-node'

import {ZtError} from '../errors.js'
import {loadKubeConfig} from '../kube/client.js'

export interface PodWithNamespace {
  pod: k8s.V1Pod
  /** undefined when the namespace could not be read */
  namespace?: k8s.V1Namespace
}

export interface NodePods {
  /** one pod and its namespace; undefined when the pod does not exist */
  pod(namespace: string, name: string): Promise<PodWithNamespace | undefined>
  /** every pod scheduled on this node, each with its namespace */
  onNode(): Promise<PodWithNamespace[]>
  /** false once the agent's DaemonSet is gone or being deleted (uninstall) */
  daemonSetLive(): Promise<boolean>
}

export interface NodePodsOptions {
  node: string
  /** the agent's own DaemonSet: NAMESPACE/NAME */
  daemonSet: {name: string; namespace: string}
  kubeconfig?: string
}

const REQUEST_TIMEOUT_MS = 10_000
const isNotFound = (error: unknown): boolean => (error as {code?: number}).code === 404

async function withDeadline<T>(what: string, call: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new ZtError('ZT_ERR_KUBE_TIMEOUT', `the API server did not answer ${what} within ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS)
    timer.unref()
  })
  try {
    return await Promise.race([call, deadline])
  } catch (error) {
    if (ZtError.is(error)) throw error
    const code = (error as {code?: number}).code
    throw new ZtError('ZT_ERR_KUBE_API', `${what} failed${code ? ` (HTTP ${code})` : ''}: ${String((error as Error).message ?? error).slice(0, 300)}`, {
      cause: error, suggestion: 'the ztctl-cni ServiceAccount needs get/list on pods and namespaces and get on its DaemonSet (rendered by install)',
    })
  } finally {
    clearTimeout(timer)
  }
}

export async function nodePods(options: NodePodsOptions): Promise<NodePods> {
  const k8sModule = await import('@kubernetes/client-node')
  const kc = await loadKubeConfig({kubeconfig: options.kubeconfig})
  const core = kc.makeApiClient(k8sModule.CoreV1Api)
  const apps = kc.makeApiClient(k8sModule.AppsV1Api)
  const readNamespace = async (name: string): Promise<k8s.V1Namespace | undefined> =>
    withDeadline(`reading namespace ${name}`, core.readNamespace({name})).catch((error: unknown) => {
      if (isNotFound((error as ZtError).cause)) return undefined
      throw error
    })
  return {
    async daemonSetLive() {
      try {
        const daemonSet = await withDeadline('reading the CNI DaemonSet', apps.readNamespacedDaemonSet(options.daemonSet))
        return !daemonSet.metadata?.deletionTimestamp
      } catch (error) {
        // 404: deleted. 401/403: our ServiceAccount or its RBAC is gone, which only an uninstall does.
        if ([401, 403, 404].includes((error as ZtError & {cause?: {code?: number}}).cause?.code ?? 0)) return false
        throw error
      }
    },
    async onNode() {
      const [pods, namespaces] = await Promise.all([
        withDeadline('listing the pods of this node', core.listPodForAllNamespaces({fieldSelector: `spec.nodeName=${options.node}`})),
        withDeadline('listing namespaces', core.listNamespace()),
      ])
      const byName = new Map(namespaces.items.map((namespace) => [namespace.metadata?.name ?? '', namespace]))
      return pods.items.map((pod) => ({namespace: byName.get(pod.metadata?.namespace ?? ''), pod}))
    },
    async pod(namespace, name) {
      try {
        const [pod, ns] = await Promise.all([withDeadline(`reading pod ${namespace}/${name}`, core.readNamespacedPod({name, namespace})), readNamespace(namespace)])
        return {namespace: ns, pod}
      } catch (error) {
        if (isNotFound((error as ZtError).cause)) return undefined
        throw error
      }
    },
  }
}

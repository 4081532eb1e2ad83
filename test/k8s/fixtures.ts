// What the controller-in-the-cluster tests share: the CRDs applied once per cluster, a fresh namespace
// per test (deleted after it), Kubernetes clients on the cluster's admin kubeconfig.
import {randomBytes} from 'node:crypto'

import {kubeClients, type KubeClients} from '../../src/lib/kube/client.js'
import {crdObjects, forClientNode} from '../../src/lib/kube/crds.js'
import type {Cluster} from '../helpers/k8s.js'

interface TestContextLike {
  after(fn: () => Promise<void> | void): void
}

const applied = new WeakSet<Cluster>()

/** Server-side apply the CRDs (field manager ztctl-test) and wait until each is Established. */
export async function applyCrds(cluster: Cluster): Promise<void> {
  if (applied.has(cluster)) return
  const {PatchStrategy, ApiextensionsV1Api} = await import('@kubernetes/client-node')
  const extensions = cluster.kc.makeApiClient(ApiextensionsV1Api)
  for (const crd of crdObjects({'app.kubernetes.io/part-of': 'ztctl'})) {
    await cluster.objects.patch(forClientNode(crd) as never, undefined, undefined, 'ztctl-test', true, PatchStrategy.ServerSideApply)
  }

  const deadline = Date.now() + 30_000
  for (const crd of crdObjects()) {
    const name = (crd.metadata as {name: string}).name
    for (;;) {
      const current = await extensions.readCustomResourceDefinition({name})
      if (current.status?.conditions?.some((condition) => condition.type === 'Established' && condition.status === 'True')) break
      if (Date.now() > deadline) throw new Error(`CRD ${name} not Established within 30 s`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  applied.add(cluster)
}

/** A new namespace with a unique name, removed after the test. */
export async function freshNamespace(t: TestContextLike, cluster: Cluster, prefix = 'zt'): Promise<string> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`
  await cluster.core.createNamespace({body: {metadata: {name}}})
  t.after(async () => {
    await cluster.core.deleteNamespace({name}).catch(() => {})
  })
  return name
}

export async function clientsFor(cluster: Cluster): Promise<KubeClients> {
  return kubeClients({kubeconfig: cluster.kubeconfigPath})
}

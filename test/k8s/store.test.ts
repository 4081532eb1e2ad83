// The Store contract (test/controller/store-contract.ts) against the Kubernetes backend on a real
// kube-apiserver: custom resources, Secrets, resourceVersions, watches. Then what only this backend
// has: other writers (kubectl) changing the configuration, invalid objects, replicas.
import assert from 'node:assert/strict'
import {after, before, test} from 'node:test'

import {openKubeStore} from '../../src/lib/controller/store/kube.js'
import type {KubeClients} from '../../src/lib/kube/client.js'
import {storeContract} from '../controller/store-contract.js'
import {waitUntil} from '../helpers/wait.js'
import {type Cluster, K8S_TEST_TIMEOUT_MS, startCluster} from '../helpers/k8s.js'
import {applyCrds, clientsFor, freshNamespace} from './fixtures.js'

let cluster: Cluster
let clients: KubeClients

// One control plane for the file (no node needed: the store only talks to the API server), torn down
// after the last test.
const teardown: (() => Promise<void> | void)[] = []
after(async () => {
  for (const step of teardown.reverse()) await step()
})
before(async () => {
  cluster = await startCluster({after: (fn) => teardown.push(fn)}, {nodes: 0})
  await applyCrds(cluster)
  clients = await clientsFor(cluster)
}, {timeout: K8S_TEST_TIMEOUT_MS})

storeContract('kubernetes', async (t) => {
  const namespace = await freshNamespace(t, cluster, 'store')
  return {open: () => openKubeStore({clients, namespace, statusFlushMs: 20})}
}, {replicas: true})

const policySpec = (name: string, port: number) => ({action: 'DENY' as const, from: ['@mallory'], name, ports: [port], services: ['tcp/db'], sourceCidrs: []})
const POLICIES = {group: 'ztctl.io', plural: 'policies', version: 'v1alpha1'}

test('kubernetes store: changes other writers make (kubectl) are revisions too, invalid objects are ignored', async (t) => {
  const namespace = await freshNamespace(t, cluster, 'store')
  const store = await openKubeStore({clients, namespace})
  t.after(() => store.close())
  const heard: number[] = []
  store.onCommit((version) => heard.push(version))
  const start = await store.currentVersion()

  // As `kubectl apply -f policy.yaml` would: no annotation, an object name of the user's choosing.
  const created = await clients.custom.createNamespacedCustomObject({
    ...POLICIES, body: {apiVersion: 'ztctl.io/v1alpha1', kind: 'Policy', metadata: {name: 'deny-mallory'}, spec: {action: 'DENY', from: ['@mallory'], name: 'deny-mallory'}}, namespace,
  }) as {metadata: {resourceVersion: string}}
  await waitUntil('the kubectl write to be heard', async () => (heard.some((v) => v >= Number(created.metadata.resourceVersion)) ? true : undefined))
  const delta = await store.changesSince(start)
  assert.deepEqual(delta?.changes, [{key: 'deny-mallory', kind: 'policy', op: 'put', value: {action: 'DENY', from: ['@mallory'], name: 'deny-mallory', ports: [], services: [], sourceCidrs: []}}],
    'the CRD schema defaults the lists the user left out')

  // An object the agents could not apply is left out (and logged), never pushed.
  const broken = await clients.custom.createNamespacedCustomObject({
    ...POLICIES, body: {apiVersion: 'ztctl.io/v1alpha1', kind: 'Policy', metadata: {name: 'broken'}, spec: {...policySpec('broken', 80), sourceCidrs: ['not-a-cidr']}}, namespace,
  }) as {metadata: {resourceVersion: string}}
  const afterBroken = await store.changesSince(Number(created.metadata.resourceVersion))
  assert.equal(afterBroken?.changes.length, 0)
  assert.ok(!(await store.listResources('policy')).items.some((item) => item.name === 'broken'))
  assert.ok(Number(broken.metadata.resourceVersion) > 0)

  // Our write of the same key updates the user's object rather than adding a second one.
  const version = await store.putResource('policy', 'deny-mallory', policySpec('deny-mallory', 22))
  const objects = await clients.custom.listNamespacedCustomObject({...POLICIES, namespace}) as {items: {metadata: {name: string}; spec: {ports: number[]}}[]}
  assert.deepEqual(objects.items.filter((item) => item.metadata.name !== 'broken').map((item) => [item.metadata.name, item.spec.ports]), [['deny-mallory', [22]]])

  // `kubectl delete` reaches the store's readers as a delete.
  await clients.custom.deleteNamespacedCustomObject({...POLICIES, name: 'deny-mallory', namespace})
  const gone = await waitUntil('the kubectl delete to be heard', async () => {
    const changes = await store.changesSince(version)
    return changes?.changes.some((change) => change.op === 'delete' && change.key === 'deny-mallory') ? changes : undefined
  })
  assert.ok(gone.version > version)
  assert.deepEqual((await store.listResources('policy')).items, [])
})

// Enrollment by label on a real cluster (issue 12 §1, §3): ztctl installed (controller + node agent in real
// pods of our image), pods in a namespace labelled ztctl.io/dataplane-mode=ambient show up in the node agent's
// `proxy-config workloads` through a real port-forward within 2 s of Ready; labelling a namespace with a
// running pod enrolls it without a restart, removing the label un-enrolls it, the opt-out annotation keeps a
// pod out, a deleted pod leaves; `proxy-status` lists the node agent from the cluster, SYNCED. The node-bound
// authority (what a node agent's certificate request is checked against) runs here in-process over the same
// cluster, on the real informers.
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'

import type {V1Pod} from '@kubernetes/client-node'

import {startKubeMesh} from '../../src/lib/controller/kube-mesh.js'
import type {IdentityRecord} from '../../src/lib/controller/store/store.js'
import {openSqliteStore} from '../../src/lib/controller/store/sqlite.js'
import {fetchConfigDump, workloadRows} from '../../src/lib/inspect/proxy-config.js'
import {kubeClients} from '../../src/lib/kube/client.js'
import {withNodeAgentAdmin} from '../../src/lib/kube/node-agents.js'
import {runCli} from '../helpers/controller.js'
import {K8S_TEST_TIMEOUT_MS, nodeValues, startCluster, ztctlImage} from '../helpers/k8s.js'
import {waitUntil} from '../helpers/wait.js'

const INSTALL_NS = 'ztctl-system'
const AMBIENT = {'ztctl.io/dataplane-mode': 'ambient'}
const silent = {debug() {}, error() {}, info() {}, warn() {}}

test('pods of labelled namespaces are workloads on the node agent (proxy-config through a port-forward), label enroll/un-enroll without restart, opt-out, proxy-status, node-bound authority', {timeout: K8S_TEST_TIMEOUT_MS}, async (t) => {
  const image = await ztctlImage()
  const cluster = await startCluster(t, {nodes: 1})
  await cluster.importImage(image.tar)
  const [node] = cluster.nodes
  const home = await mkdtemp(path.join(tmpdir(), 'ztctl-k8s2b-'))
  t.after(() => rm(home, {force: true, recursive: true}))
  const env = {...process.env, HOME: home, KUBECONFIG: cluster.kubeconfigPath, NO_COLOR: '1', ZTCTL_HOME: home}
  const ztctl = (args: string[]) => runCli(args, env, {timeoutMs: 600_000})
  const started = Date.now()
  const install = await ztctl(['install', '--profile', 'ambient', '-y', ...nodeValues(node), '--set', 'cni.enabled=false'])
  assert.equal(install.code, 0, install.stdout + install.stderr)
  t.diagnostic(`install (controller + node agent) in ${Date.now() - started} ms`)

  const {core} = cluster
  const mesh = `mesh-${randomBytes(3).toString('hex')}`
  const later = `later-${randomBytes(3).toString('hex')}`
  await cluster.createNamespace(mesh)
  await cluster.createNamespace(later)
  const setLabels = async (name: string, labels: Record<string, string> | undefined) => {
    const current = await core.readNamespace({name})
    const others = Object.fromEntries(Object.entries(current.metadata?.labels ?? {}).filter(([key]) => key !== 'ztctl.io/dataplane-mode'))
    await core.replaceNamespace({body: {...current, metadata: {...current.metadata, labels: {...others, ...labels}}}, name})
  }

  await setLabels(mesh, AMBIENT)
  const pod = (name: string, annotations?: Record<string, string>): V1Pod => ({
    metadata: {annotations, labels: {app: name}, name},
    spec: {containers: [{command: ['sleep', '3600'], image: image.ref, imagePullPolicy: 'Never', name: 'main'}], nodeName: node.name, terminationGracePeriodSeconds: 0},
  })
  const target = {installNamespace: INSTALL_NS, kubeconfig: cluster.kubeconfigPath}
  /** The node agent's workloads, read through a real port-forward to its admin port. */
  const agentWorkloads = () => withNodeAgentAdmin(target, {node: node.name}, async (admin) => workloadRows(await fetchConfigDump({admin, home: {} as never})))
  const names = async () => new Set((await agentWorkloads()).map((row) => `${row.namespace}/${row.name}`))

  await t.test('a pod created in a labelled namespace is on its node agent within 2 s of Ready, with its SPIFFE ID', async () => {
    await core.createNamespacedPod({body: pod('web'), namespace: mesh})
    await cluster.waitForPodReady(mesh, 'web')
    const ready = Date.now()
    await waitUntil('web on the node agent', async () => (await names()).has(`${mesh}/web`), 10_000, 50)
    const seenAfter = Date.now() - ready
    t.diagnostic(`web seen in proxy-config workloads ${seenAfter} ms after Ready`)
    assert.ok(seenAfter < 2000, `seen ${seenAfter} ms after Ready`)

    const result = await ztctl(['proxy-config', 'workloads', `web.${mesh}`, '--kubeconfig', cluster.kubeconfigPath, '-o', 'json'])
    assert.equal(result.code, 0, result.stderr)
    const rows = JSON.parse(result.stdout) as {address: string; name: string; namespace: string; node: string; spiffe: string}[]
    const web = rows.find((row) => row.name === 'web' && row.namespace === mesh)
    const live = await core.readNamespacedPod({name: 'web', namespace: mesh})
    assert.deepEqual(web && {address: web.address, node: web.node, spiffe: web.spiffe}, {address: live.status!.podIP, node: `node-${node.name}`, spiffe: `spiffe://cluster.local/ns/${mesh}/sa/default`})
    const table = await ztctl(['proxy-config', 'workloads', '--node', node.name])
    assert.equal(table.code, 0, table.stderr)
    assert.match(table.stdout, new RegExp(`^${mesh}\\s+web\\s+${live.status!.podIP!.replaceAll('.', '\\.')}\\s+node-${node.name}`, 'm'))
  })

  await t.test('the opt-out annotation keeps a pod out; an unlabelled namespace\'s pod is out', async () => {
    await core.createNamespacedPod({body: pod('shy', {'ztctl.io/redirection': 'disabled'}), namespace: mesh})
    await core.createNamespacedPod({body: pod('late'), namespace: later})
    await cluster.waitForPodReady(mesh, 'shy')
    await cluster.waitForPodReady(later, 'late')
    // A pod created after both: once it is seen, the reconciles that saw shy and late have run.
    await core.createNamespacedPod({body: pod('marker'), namespace: mesh})
    const seen = await waitUntil('marker on the node agent', async () => {
      const current = await names()
      return current.has(`${mesh}/marker`) ? current : undefined
    }, 30_000)
    assert.ok(!seen.has(`${mesh}/shy`), 'opted-out pod is not a workload')
    assert.ok(!seen.has(`${later}/late`), 'pod of an unlabelled namespace is not a workload')
  })

  await t.test('labelling a namespace enrolls its running pod without a restart; removing the label un-enrolls it', async () => {
    const before = await core.readNamespacedPod({name: 'late', namespace: later})
    await setLabels(later, AMBIENT)
    await waitUntil('late enrolled', async () => (await names()).has(`${later}/late`), 10_000, 50)
    const after = await core.readNamespacedPod({name: 'late', namespace: later})
    assert.equal(after.metadata!.uid, before.metadata!.uid, 'the same pod')
    assert.equal(after.status!.containerStatuses![0].restartCount, 0, 'not restarted')
    assert.equal(after.status!.containerStatuses![0].state?.running?.startedAt?.toString(), before.status!.containerStatuses![0].state?.running?.startedAt?.toString())
    await setLabels(later, undefined)
    await waitUntil('late un-enrolled', async () => !(await names()).has(`${later}/late`), 10_000, 50)
  })

  await t.test('a deleted pod leaves the workloads', async () => {
    await core.deleteNamespacedPod({gracePeriodSeconds: 0, name: 'marker', namespace: mesh})
    await waitUntil('marker gone', async () => !(await names()).has(`${mesh}/marker`), 30_000)
  })

  await t.test('a Service of the labelled namespace is on the node agent with its ClusterIP and its endpoint pod at the target port', async () => {
    const service = await core.createNamespacedService({body: {metadata: {name: 'web'}, spec: {ports: [{name: 'http', port: 80, targetPort: 8080}], selector: {app: 'web'}}}, namespace: mesh})
    const web = await core.readNamespacedPod({name: 'web', namespace: mesh})
    const row = await waitUntil('Service web on the node agent', async () => {
      const result = await ztctl(['proxy-config', 'services', '--node', node.name, '-o', 'json'])
      return (JSON.parse(result.stdout) as {endpoints: string; name: string; namespace: string; vip: string}[]).find((item) => item.namespace === mesh && item.name === 'web')
    }, 30_000, 200)
    assert.deepEqual({endpoints: row.endpoints, vip: row.vip}, {endpoints: `node-${node.name}→${web.status!.podIP}:8080`, vip: `${service.spec!.clusterIP}:80`})
  })

  await t.test('proxy-status lists the node agent pod from the cluster, SYNCED, online', async () => {
    const result = await ztctl(['proxy-status', '--kubeconfig', cluster.kubeconfigPath, '-o', 'json'])
    assert.equal(result.code, 0, result.stderr)
    const status = JSON.parse(result.stdout) as {agents: {agent: string; node: string; ready: boolean; sync?: {online: boolean; status: string}}[]}
    assert.deepEqual(status.agents.map((agent) => [agent.agent, agent.node, agent.ready, agent.sync?.status, agent.sync?.online]), [[`node-${node.name}`, node.name, true, 'SYNCED', true]])
    const table = await ztctl(['proxy-status', '-n', INSTALL_NS])
    assert.match(table.stdout, new RegExp(`^ztctl-node-\\S+\\.${INSTALL_NS}\\s+${node.name}\\s+yes\\s+SYNCED`, 'm'))
  })

  await t.test('node-bound authority: a node may serve only service accounts with a pod on it (cache, then the API)', async (tt) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ztctl-k8s2b-store-'))
    tt.after(() => rm(dir, {force: true, recursive: true}))
    const store = await openSqliteStore(dir)
    tt.after(() => store.close())
    const kube = startKubeMesh({cache: {settleMs: 5}, clients: await kubeClients({kubeconfig: cluster.kubeconfigPath}), logger: silent, namespace: INSTALL_NS, store})
    tt.after(() => kube.close())
    kube.startLeading()
    await kube.reconcile()
    const published = (await store.listResources('workload')).items.map((workload) => `${workload.namespace}/${workload.name}`)
    assert.deepEqual(published, [`${mesh}/web`], 'the in-process leader publishes the same workloads into its own store')

    const web = await core.readNamespacedPod({name: 'web', namespace: mesh})
    const nodeIdentity = (name: string): IdentityRecord => ({createdAt: '', id: `id-${name}`, name: `node-${name}`, roles: ['node'], scope: {node: name}, spiffe: `spiffe://cluster.local/node-${name}`} as unknown as IdentityRecord)
    await kube.authority.authorize(nodeIdentity(node.name), {namespace: mesh, serviceAccount: 'default'})
    await kube.authority.authorize(nodeIdentity(node.name), {ips: [web.status!.podIP!], name: 'web', namespace: mesh, serviceAccount: 'default', uid: web.metadata!.uid})
    await assert.rejects(kube.authority.authorize(nodeIdentity(node.name), {namespace: mesh, serviceAccount: 'payments'}), {code: 'ZT_ERR_FORBIDDEN', message: new RegExp(`${mesh}/payments, which has no pod on node "${node.name}"`)})
    await assert.rejects(kube.authority.authorize(nodeIdentity('node-9'), {namespace: mesh, serviceAccount: 'default'}), {code: 'ZT_ERR_FORBIDDEN'})
    await assert.rejects(kube.authority.authorize(nodeIdentity(node.name), {ips: ['10.1.2.3'], namespace: mesh, serviceAccount: 'default'}), {code: 'ZT_ERR_FORBIDDEN'}, 'an address the pod does not have')
    await assert.rejects(kube.authority.authorize({...nodeIdentity(node.name), scope: undefined}, {namespace: mesh, serviceAccount: 'default'}), {code: 'ZT_ERR_FORBIDDEN', message: /not bound to a Kubernetes node/})
  })
})

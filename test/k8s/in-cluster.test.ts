// The controller and a node agent as real pods of our image on a real node (kubelet, containerd, runc,
// kube-proxy), as `ztctl install` renders them (test/k8s/manifests.ts) in a namespace of the test's: the
// controller Deployment becomes Ready with its state in the API server; the CLI reaches it
// through a context of kind kubernetes (port-forward + Secret ztctl-admin) to create identities, policies
// and tunnels; the node-agent DaemonSet pod enrolls with its ServiceAccount token through the Service and
// becomes Ready; a Policy changed with the API (as kubectl would) reaches the agent (timed); then the
// controller pod is deleted, and once its replacement is Ready every identity, policy and tunnel is there
// and the agent resumes (a new change reaches it).
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'

import type {V1Pod} from '@kubernetes/client-node'

import {upsertKubeContext} from '../../src/lib/kube/controller-context.js'
import {runCli} from '../helpers/controller.js'
import {type Cluster, describePod, K8S_TEST_TIMEOUT_MS, startCluster, ztctlImage} from '../helpers/k8s.js'
import {waitUntil} from '../helpers/wait.js'
import {applyCrds, freshNamespace} from './fixtures.js'
import {controllerObjects, createObjects, installValues, nodeAgentObjects} from './manifests.js'

interface Dump {
  policies: {name: string; ports: number[]}[]
  version: number
}

/** A Ready pod of the selector (other than `not`); on a timeout the error carries each pod's state and log. */
async function readyPod(cluster: Cluster, namespace: string, selector: string, not?: string): Promise<V1Pod> {
  const list = async () => (await cluster.core.listNamespacedPod({labelSelector: selector, namespace})).items
  try {
    return await waitUntil(`a Ready pod ${selector}`, async () => (await list()).find((pod) => pod.metadata?.name !== not && !pod.metadata?.deletionTimestamp
      && pod.status?.conditions?.some((condition) => condition.type === 'Ready' && condition.status === 'True')), 180_000, 200)
  } catch (error) {
    const states = await Promise.all((await list()).map(async (pod) => `${await describePod(cluster.core, namespace, pod.metadata!.name!)}\n${await cluster.podLogs(namespace, pod.metadata!.name!).catch((logError: Error) => logError.message)}`))
    throw new Error(`${(error as Error).message}\n${states.join('\n')}`, {cause: error})
  }
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

test('controller and node agent in real pods: CLI through a kubernetes context, kubectl changes reach the agent, a deleted controller pod loses nothing', {timeout: K8S_TEST_TIMEOUT_MS}, async (t) => {
  const image = await ztctlImage()
  const cluster = await startCluster(t, {nodes: 1})
  await cluster.importImage(image.tar)
  await applyCrds(cluster)
  const namespace = await freshNamespace(t, cluster, 'ztctl')
  const home = await mkdtemp(path.join(tmpdir(), 'ztctl-cli-'))
  t.after(() => rm(home, {force: true, recursive: true}))
  const cli = async (...args: string[]) => {
    const result = await runCli(args, {...process.env, NO_COLOR: '1', ZTCTL_HOME: home}, {timeoutMs: 60_000})
    assert.equal(result.code, 0, `ztctl ${args.join(' ')}\n${result.stdout}\n${result.stderr}`)
    return result.stdout
  }

  const json = async <T>(...args: string[]): Promise<T> => JSON.parse(await cli(...args, '-o', 'json')) as T

  // The controller: Ready once it serves from the API server.
  const values = await installValues(namespace, image.ref, cluster.nodes[0])
  let started = Date.now()
  await createObjects(cluster, controllerObjects(values))
  const controllerPod = await readyPod(cluster, namespace, 'app.kubernetes.io/name=ztctl-controller')
  t.diagnostic(`controller pod Ready ${Date.now() - started} ms after its objects were created`)

  // The CLI reaches it through a context of kind kubernetes, as `ztctl install` leaves it.
  await upsertKubeContext({configDir: home, dataDir: home}, {kubeconfig: cluster.kubeconfigPath, name: 'cluster', namespace})
  const contexts = await json<{kind?: string; name: string}[]>('context', 'list')
  assert.deepEqual(contexts.map((context) => [context.name, context.kind]), [['cluster', 'kubernetes']])
  assert.match(await cli('context', 'show'), new RegExp(`Kind:\\s+kubernetes[\\s\\S]*namespace:\\s+${namespace}[\\s\\S]*name:\\s+admin`))
  await cli('identity', 'create', 'web', '-a', 'frontend', '--out', path.join(home, 'web.jwt'))
  await cli('identity', 'create', 'db-host', '--out', path.join(home, 'db-host.jwt'))
  await cli('policy', 'create', 'no-guests', '--action', 'DENY', '--from', '#guest', '--port', '5432')
  // Their agents do not run here: stored, nothing to wait for.
  await cli('tunnel', 'open', 'outbound', 'tcp/db', '--agent', 'db-host', '--target', '127.0.0.1:5432', '--no-wait')
  await cli('tunnel', 'open', 'inbound', 'tcp/db', '--agent', 'web', '--listen', '127.0.0.1:7000', '--no-wait')

  // The node agent: enrolls with its token through the Service, trusting the CA ConfigMap.
  started = Date.now()
  await createObjects(cluster, nodeAgentObjects(values))
  const agentPod = await readyPod(cluster, namespace, 'app.kubernetes.io/name=ztctl-node')
  t.diagnostic(`node-agent pod Ready ${Date.now() - started} ms after the DaemonSet was created`)
  const node = agentPod.spec!.nodeName!
  const nodeIdentity = `node-${node}`
  const before = {
    identities: (await json<{name: string; roles: string[]}[]>('identity', 'list')).map(({name, roles}) => ({name, roles})).sort((a, b) => a.name.localeCompare(b.name)),
    policies: (await json<{items: unknown[]}>('policy', 'list')).items,
    tunnels: (await json<{tunnels: unknown[]}>('tunnel', 'list')).tunnels,
  }
  assert.deepEqual(before.identities.map((identity) => identity.name), ['admin', 'db-host', nodeIdentity, 'web'])
  assert.deepEqual(before.identities.find((identity) => identity.name === nodeIdentity)!.roles, ['node'])
  assert.equal(before.tunnels.length, 1)

  // A change made with the API (kubectl's way), timed until the agent has applied it.
  const forward = await cluster.portForward(namespace, agentPod.metadata!.name!, 15_000)
  t.after(() => forward.close())
  const dump = async (): Promise<Dump> => (await (await fetch(`http://127.0.0.1:${forward.port}/config_dump`)).json()) as Dump
  await waitUntil('the agent to have the policy', async () => (await dump()).policies.some((policy) => policy.name === 'no-guests'), 60_000, 100)
  const {CustomObjectsApi, PatchStrategy, setHeaderOptions} = await import('@kubernetes/client-node')
  const custom = cluster.kc.makeApiClient(CustomObjectsApi)
  const samples: number[] = []
  for (const port of [5433, 5434, 5435, 5436, 5437]) {
    const changedAt = Date.now()
    await custom.patchNamespacedCustomObject({
      body: {spec: {ports: [port]}}, group: 'ztctl.io', name: 'no-guests', namespace, plural: 'policies', version: 'v1alpha1',
    }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch))
    await waitUntil(`port ${port} at the agent`, async () => (await dump()).policies.find((policy) => policy.name === 'no-guests')?.ports[0] === port, 30_000, 10)
    samples.push(Date.now() - changedAt)
  }

  t.diagnostic(`Policy CR patch → applied by the node agent: median ${median(samples)} ms (${samples.join(', ')} ms)`)
  // In a kubernetes context proxy-status lists the node-agent pods, each with its sync state at the controller.
  interface PodStatus {agent: string; sync?: {ackedVersion?: number; online: boolean}}
  const status = await json<{agents: PodStatus[]; version: number}>('proxy-status')
  const agentStatus = status.agents.find((agent) => agent.agent === nodeIdentity)?.sync
  assert.ok(agentStatus?.online, 'the node agent is online')
  assert.ok((agentStatus.ackedVersion ?? 0) >= (await dump()).version - 0, 'its ack is recorded')

  // The controller pod goes; its replacement serves the same state, and the agent comes back to it.
  const caBefore = (await cluster.core.readNamespacedSecret({name: 'ztctl-ca', namespace})).data
  started = Date.now()
  await cluster.core.deleteNamespacedPod({name: controllerPod.metadata!.name!, namespace})
  const replacement = await readyPod(cluster, namespace, 'app.kubernetes.io/name=ztctl-controller', controllerPod.metadata!.name)
  t.diagnostic(`controller pod deleted → replacement Ready: ${Date.now() - started} ms`)
  assert.notEqual(replacement.metadata!.name, controllerPod.metadata!.name)
  assert.deepEqual((await cluster.core.readNamespacedSecret({name: 'ztctl-ca', namespace})).data, caBefore, 'the same CA')
  const after = {
    identities: (await json<{name: string; roles: string[]}[]>('identity', 'list')).map(({name, roles}) => ({name, roles})).sort((a, b) => a.name.localeCompare(b.name)),
    policies: (await json<{items: {name: string; ports: number[]}[]}>('policy', 'list')).items,
    tunnels: (await json<{tunnels: unknown[]}>('tunnel', 'list')).tunnels,
  }
  assert.deepEqual(after.identities, before.identities)
  assert.deepEqual(after.policies.map((policy) => [policy.name, policy.ports]), [['no-guests', [5437]]])
  assert.deepEqual(after.tunnels, before.tunnels)
  // `policy create` waits until the node agent has applied it (success means applied), through the new pod.
  started = Date.now()
  await cli('policy', 'create', 'after-restart', '--action', 'ALLOW', '--from', '#frontend')
  await waitUntil('the agent to apply a change made after the restart', async () => (await dump()).policies.some((policy) => policy.name === 'after-restart'), 60_000, 50)
  t.diagnostic(`agent resumed: a change after the restart applied ${Date.now() - started} ms after the CLI made it`)
  const online = await waitUntil('the agent online again', async () => {
    const again = await json<{agents: PodStatus[]}>('proxy-status')
    return again.agents.find((agent) => agent.agent === nodeIdentity && agent.sync?.online)
  }, 60_000, 500)
  assert.ok(online)
  assert.equal((await cluster.core.readNamespacedPod({name: agentPod.metadata!.name!, namespace})).status?.containerStatuses?.[0]?.restartCount, 0, 'the agent never restarted')
})

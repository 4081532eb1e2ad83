// Issue 12, pod to pod across two real nodes (two kubelets, two containerds, two bridges on one machine):
// one installation (one DaemonSet each for the CNI agent and the node agent) serves both nodes, its
// directories named per node with $(NODE_NAME) (the nodes share this machine's filesystem:
// test/helpers/k8s.ts sharedNodeValues, docs/kubernetes-cni.md). An enrolled client pod on node 1 reaches an enrolled
// server pod on node 2 through both node agents: node 1's agent carries the connection as HBONE (mTLS with
// the client's certificate, which only node 1's agent can get) to node 2's agent, whose access log names
// both SPIFFE IDs; a DENY policy on the client's service account refuses it at node 2's agent; node 2's agent
// replaced, its successor serves the server again; an unenrolled pod on node 1 still reaches it in plain text.
import assert from 'node:assert/strict'
import {readdir, readFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'

import type {V1Pod} from '@kubernetes/client-node'

import {fetchConfigDump, workloadRows} from '../../src/lib/inspect/proxy-config.js'
import {withNodeAgentAdmin} from '../../src/lib/kube/node-agents.js'
import {type Cluster, K8S_TEST_TIMEOUT_MS, sharedNodeValues, startCluster, ztctlImage} from '../helpers/k8s.js'
import {waitUntil} from '../helpers/wait.js'
import {createServiceAccounts, fetchFrom, fetchWhenServed, findAccessEntry, PORT, server, sleeper, stepTimer} from './cni-fixtures.js'
import {meshCli} from './mesh-fixtures.js'

const NS = 'ztctl-system'
const TD = 'cluster.local'
const AMB = 'amb'
const PLAIN = 'plain'

const onNode = (pod: V1Pod, node: string): V1Pod => ({...pod, spec: {...pod.spec!, nodeName: node}})

/** The running pod of DaemonSet NAME on NODE. */
async function agentPodOn(cluster: Cluster, name: string, node: string): Promise<string> {
  const pods = await cluster.core.listNamespacedPod({fieldSelector: `spec.nodeName=${node}`, labelSelector: `app.kubernetes.io/name=${name}`, namespace: NS})
  const running = pods.items.find((item) => item.status?.phase === 'Running')?.metadata?.name
  assert.ok(running, `no running ${name} pod on ${node}`)
  return running
}

/**
 * CONNECT, then look for FIND in the log of the node agent on each of NODES, again until all are found. A
 * line can be lost on these two nodes: each kubelet removes the other node's pod log directories (docs/
 * kubernetes.md, pitfall 15), and once the pod's own kubelet reopens the log, what was written before is gone.
 */
async function loggedAfterRetries<T>(cluster: Cluster, what: string, connect: () => Promise<void>, nodes: string[], find: (log: string) => T | undefined): Promise<T[]> {
  return waitUntil(what, async () => {
    await connect()
    const found = await Promise.all(nodes.map(async (node) => find(await cluster.podLogs(NS, await agentPodOn(cluster, 'ztctl-node', node)))))
    return found.every((entry) => entry !== undefined) ? found as T[] : undefined
  }, 90_000, 2000)
}

const conflistOf = async (dir: string): Promise<string> => path.join(dir, (await readdir(dir)).find((name) => name.endsWith('.conflist'))!)
const records = async (runDir: string): Promise<string[]> => (await readdir(path.join(runDir, 'inpod')).catch(() => [] as string[])).filter((name) => name.endsWith('.json')).sort()

test('pod to pod across two real nodes through both node agents (HBONE), one installation for both nodes', {timeout: K8S_TEST_TIMEOUT_MS}, async (t) => {
  const image = await ztctlImage()
  const cluster = await startCluster(t, {nodes: 2})
  await cluster.importImage(image.tar)
  const [node1, node2] = cluster.nodes
  const cli = await meshCli(t, cluster)
  const {step: timed, timings} = stepTimer()
  t.after(() => t.diagnostic(`cluster up ${cluster.timingsMs.total} ms; timings (ms): ${JSON.stringify(timings)}`))

  await t.test('one install chains the plugin into each node\'s own conflist, pointing at that node\'s socket', async () => {
    await timed('install', () => cli.ztctl(['install', '--profile', 'ambient', '-y', ...sharedNodeValues(cluster)]))
    for (const node of cluster.nodes) {
      const chained = JSON.parse(await readFile(await conflistOf(node.cniConfDir), 'utf8')) as {plugins: {bridge?: string; socket?: string; type: string}[]}
      assert.deepEqual(chained.plugins.map((plugin) => plugin.type), ['bridge', 'ztctl-cni'], node.name)
      assert.equal(chained.plugins[0].bridge, node.bridge, `${node.name}'s own conflist`)
      assert.equal(chained.plugins[1].socket, path.join(node.runDir, 'cni.sock'))
    }

    const daemonSets = await cluster.apps.listNamespacedDaemonSet({namespace: NS})
    assert.deepEqual(daemonSets.items.map((ds) => [ds.metadata!.name, ds.status!.numberReady]).sort(), [['ztctl-cni', 2], ['ztctl-node', 2]])
  })

  await cluster.core.createNamespace({body: {metadata: {labels: {'ztctl.io/dataplane-mode': 'ambient'}, name: AMB}}})
  await cluster.createNamespace(PLAIN)
  await createServiceAccounts(cluster, AMB, ['server', 'client'])
  await createServiceAccounts(cluster, PLAIN, ['plain'])
  const ips: Record<string, string> = {}

  await t.test('each node\'s CNI agent redirects its own enrolled pod at start', async () => {
    await timed('3 pods Ready', async () => {
      await cluster.core.createNamespacedPod({body: onNode(server(AMB), node2.name), namespace: AMB})
      await cluster.core.createNamespacedPod({body: onNode(sleeper(AMB, 'client'), node1.name), namespace: AMB})
      await cluster.core.createNamespacedPod({body: onNode(sleeper(PLAIN, 'plain'), node1.name), namespace: PLAIN})
      for (const [namespace, name] of [[AMB, 'server'], [AMB, 'client'], [PLAIN, 'plain']]) ips[name] = (await cluster.waitForPodReady(namespace, name)).status!.podIP!
    })
    assert.ok(ips.server.startsWith(node2.podCidr.replace(/0\/24$/, '')), `server ${ips.server} in ${node2.podCidr}`)
    assert.ok(ips.client.startsWith(node1.podCidr.replace(/0\/24$/, '')), `client ${ips.client} in ${node1.podCidr}`)
    assert.deepEqual(await records(node1.runDir), [`${AMB}_client.json`])
    assert.deepEqual(await records(node2.runDir), [`${AMB}_server.json`])
    // before the first connection, both agents have both pods (their workloads, through a real port-forward)
    await timed('both agents know both pods', () => Promise.all(cluster.nodes.map((node) => waitUntil(`${node.name}'s agent knows server and client`, async () => {
      const rows = await withNodeAgentAdmin({installNamespace: NS, kubeconfig: cluster.kubeconfigPath}, {node: node.name}, async (admin) => workloadRows(await fetchConfigDump({admin, home: {} as never})))
      const known = new Set(rows.filter((row) => row.namespace === AMB).map((row) => row.name))
      return known.has('server') && known.has('client') ? true : undefined
    }, 60_000, 200))))
  })

  await t.test('client on node 1 → server on node 2 goes through both node agents: node 2\'s access log names both SPIFFE IDs', async () => {
    const reply = await timed('first cross-node mesh fetch', () => fetchWhenServed('client → server across the nodes', cluster, AMB, 'client', ips.server))
    assert.equal(reply.out.trim(), 'hello from server')
    const client = `spiffe://${TD}/ns/${AMB}/sa/client`
    const [destination, source] = await loggedAfterRetries(cluster, 'client → server in both agents\' access logs', async () => {
      assert.equal((await fetchFrom(cluster, AMB, 'client', ips.server)).code, 0)
    }, [node2.name, node1.name], (log) => findAccessEntry(log, client))
    t.diagnostic(`node 1's access line: ${JSON.stringify(source)}\nnode 2's access line: ${JSON.stringify(destination)}`)
    // node 1's agent dialled HBONE (port 15008) to the server pod, where node 2's agent accepted it
    const hbone = `${ips.server}:15008`
    const summary = (entry: Record<string, unknown>) => [entry.direction, entry['dst.addr'], entry['dst.hbone_addr'], entry['dst.identity']]
    assert.deepEqual(summary(source), ['outbound', hbone, `${ips.server}:${PORT}`, `spiffe://${TD}/ns/${AMB}/sa/server`])
    assert.deepEqual(summary(destination), ['inbound', hbone, `${ips.server}:${PORT}`, `spiffe://${TD}/ns/${AMB}/sa/server`])
  })

  await t.test('a DENY policy on the client\'s service account refuses it across the nodes: node 2\'s agent (the destination\'s) rejects it', async () => {
    await cli.ztctl(['policy', 'create', 'deny-client', '--action', 'DENY', '--from', `sa:${AMB}/client`])
    const refused = await fetchFrom(cluster, AMB, 'client', ips.server)
    assert.notEqual(refused.code, 0, `refused: ${refused.out}`)
    await loggedAfterRetries(cluster, 'a policy rejection in node 2\'s agent log', async () => {
      assert.notEqual((await fetchFrom(cluster, AMB, 'client', ips.server)).code, 0, 'refused')
    }, [node2.name], (log) => (log.includes('policy rejection') ? true : undefined))
    await cli.ztctl(['policy', 'delete', 'deny-client'])
    await fetchWhenServed('client → server once the policy is gone', cluster, AMB, 'client', ips.server)
  })

  await t.test('a restarted node agent on node 2 enters the server\'s netns again (its per-node netns mount shows pods from before)', async () => {
    const before = await agentPodOn(cluster, 'ztctl-node', node2.name)
    await timed('node 2 agent replaced and serving', async () => {
      await cluster.core.deleteNamespacedPod({gracePeriodSeconds: 1, name: before, namespace: NS})
      const after = await waitUntil('a new node agent pod on node 2', async () => {
        const name = await agentPodOn(cluster, 'ztctl-node', node2.name).catch(() => '')
        return name && name !== before ? name : undefined
      }, 120_000, 500)
      await cluster.waitForPodReady(NS, after)
      const record = JSON.parse(await readFile(path.join(node2.runDir, `inpod/${AMB}_server.json`), 'utf8')) as {add: {netns: string}}
      const listed = await cluster.exec(NS, after, ['ls', path.dirname(record.add.netns)])
      assert.ok(listed.stdout.split('\n').includes(path.basename(record.add.netns)), `the server's netns ${record.add.netns} in the new agent's mount: ${listed.stdout}${listed.stderr}`)
      const reply = await fetchWhenServed('client → server through the new agent', cluster, AMB, 'client', ips.server)
      assert.equal(reply.out.trim(), 'hello from server')
      await loggedAfterRetries(cluster, 'client → server in the new agent\'s access log', async () => {
        assert.equal((await fetchFrom(cluster, AMB, 'client', ips.server)).code, 0)
      }, [node2.name], (log) => findAccessEntry(log, `spiffe://${TD}/ns/${AMB}/sa/client`))
    })
  })

  await t.test('an unenrolled pod on node 1 reaches the server on node 2 in plain text', async () => {
    const result = await fetchFrom(cluster, PLAIN, 'plain', ips.server)
    assert.equal(result.code, 0, result.out)
    assert.equal(result.out.trim(), 'hello from server')
  })
})

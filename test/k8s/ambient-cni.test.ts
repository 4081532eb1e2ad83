// Kubernetes II §2 on a real cluster (real kubelet, containerd, CNI bridge; our image in real pods): `install`
// chains the ztctl CNI plugin into the node's conflist; a pod created in a namespace labelled
// ztctl.io/dataplane-mode=ambient is redirected by the plugin's ADD before its containers start; a connection
// between two enrolled pods goes through the node agent (access log and metrics with both SPIFFE IDs); a DENY
// policy on the source's service account refuses it; an unenrolled pod and an opted-out pod connect in plain
// text; a namespace labelled later enrolls its running pod without a restart; a restarted node agent serves the
// pods again; a node agent's identity is refused certificates for service accounts with no pod on its node;
// `uninstall` restores the conflist byte for byte, removes the plugin and leaves the running pods with working
// plain networking.
// Each step's time is reported as a diagnostic.
import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {mkdtemp, readdir, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'

import {ControllerClient} from '../../src/lib/client/controller-client.js'
import {enrollWithServiceAccount} from '../../src/lib/client/kube-enroll.js'
import {createKeyAndCsr} from '../../src/lib/pki/pki.js'
import {runCli} from '../helpers/controller.js'
import {K8S_TEST_TIMEOUT_MS, nodeValues, startCluster, ztctlImage} from '../helpers/k8s.js'
import {waitUntil} from '../helpers/wait.js'
import {accessLogEntry, createServiceAccounts, fetchFrom, fetchWhenServed, PORT, server, sleeper, stepTimer} from './cni-fixtures.js'

const NS = 'ztctl-system'
const TD = 'cluster.local'

test('the CNI plugin redirects enrolled pods at start; uninstall restores the conflist byte for byte', {timeout: K8S_TEST_TIMEOUT_MS}, async (t) => {
  const image = await ztctlImage()
  const cluster = await startCluster(t, {nodes: 1})
  await cluster.importImage(image.tar)
  const [node] = cluster.nodes
  const {netnsDir, runDir} = node
  const conflist = path.join(node.cniConfDir, (await readdir(node.cniConfDir)).find((name) => name.endsWith('.conflist'))!)
  const original = await readFile(conflist)
  const home = await mkdtemp(path.join(tmpdir(), 'ztctl-k8s2a-'))
  t.after(() => rm(home, {force: true, recursive: true}))
  const env = {...process.env, HOME: home, KUBECONFIG: cluster.kubeconfigPath, NO_COLOR: '1', ZTCTL_HOME: home}
  const {step, timings} = stepTimer()

  const ztctl = async (args: string[]) => {
    const result = await runCli(args, env, {timeoutMs: 600_000})
    return {...result, out: result.stdout + result.stderr}
  }

  const values = nodeValues(node)
  t.after(() => t.diagnostic(`timings (ms): ${JSON.stringify(timings)}`))
  const records = async (): Promise<string[]> => (await readdir(path.join(runDir, 'inpod')).catch(() => [] as string[])).filter((name) => name.endsWith('.json')).sort()
  const nodeAgentPod = async (): Promise<string> => {
    const pods = await cluster.core.listNamespacedPod({labelSelector: 'app.kubernetes.io/name=ztctl-node', namespace: NS})
    return pods.items.find((item) => item.status?.phase === 'Running')?.metadata?.name ?? ''
  }

  await t.test('install chains the plugin last into the node\'s conflist and installs the executable', async () => {
    const result = await step('install', () => ztctl(['install', '--profile', 'ambient', '-y', ...values]))
    assert.equal(result.code, 0, result.out)
    const chained = JSON.parse(await readFile(conflist, 'utf8')) as {plugins: {socket?: string; type: string}[]}
    assert.deepEqual(chained.plugins.map((plugin) => plugin.type), ['bridge', 'ztctl-cni'])
    assert.equal(chained.plugins[1]?.socket, path.join(runDir, 'cni.sock'))
    assert.ok(existsSync(path.join(node.cniBinDir, 'ztctl-cni')), 'the plugin executable is in the node\'s bin dir')
  })

  await t.test('the primary CNI rewriting its conflist gets the entry back at once: the agent watches the conf dir (its poll is 30 s)', async () => {
    const rewritten = Date.now()
    await writeFile(`${conflist}.tmp`, original)
    await rename(`${conflist}.tmp`, conflist) // as a CNI installer writes: whole file, renamed into place
    await waitUntil('chained again', async () => {
      const plugins = (JSON.parse(await readFile(conflist, 'utf8')) as {plugins: {type: string}[]}).plugins.map((plugin) => plugin.type)
      return plugins.includes('ztctl-cni') || undefined
    }, 30_000, 20)
    const after = Date.now() - rewritten
    t.diagnostic(`chained again ${after} ms after the rewrite`)
    assert.ok(after < 5000, `chained again after ${after} ms: by the watch, not the 30 s poll`)
  })

  const amb = 'amb'
  const plain = 'plain'
  await cluster.createNamespace(plain)
  await cluster.core.createNamespace({body: {metadata: {labels: {'ztctl.io/dataplane-mode': 'ambient'}, name: amb}}})
  await waitUntil('the default token of amb', () => cluster.core.readNamespacedServiceAccount({name: 'default', namespace: amb}).then((sa) => (sa.secrets?.length ? sa : undefined)), 60_000)
  await createServiceAccounts(cluster, amb, ['server', 'client', 'optout'])
  await createServiceAccounts(cluster, plain, ['plain'])
  // a Kubernetes Service in front of the server: port 80 → the pod's 8080
  const service = await cluster.core.createNamespacedService({
    body: {metadata: {name: 'web'}, spec: {ports: [{name: 'http', port: 80, protocol: 'TCP', targetPort: PORT}], selector: {app: 'server'}}}, namespace: amb,
  })
  const ips: Record<string, string> = {}

  await t.test('pods created in the labelled namespace are redirected at start; the opt-out and the unlabelled namespace are not', async () => {
    await step('create 4 pods and wait Ready', async () => {
      await cluster.core.createNamespacedPod({body: server(amb), namespace: amb})
      await cluster.core.createNamespacedPod({body: sleeper(amb, 'client'), namespace: amb})
      await cluster.core.createNamespacedPod({body: sleeper(amb, 'optout', 'optout', {'ztctl.io/redirection': 'disabled'}), namespace: amb})
      await cluster.core.createNamespacedPod({body: sleeper(plain, 'plain'), namespace: plain})
      for (const [namespace, name] of [[amb, 'server'], [amb, 'client'], [amb, 'optout'], [plain, 'plain']]) {
        ips[name] = (await cluster.waitForPodReady(namespace, name)).status!.podIP!
      }
    })
    // Redirected by the ADD itself: the record exists as soon as the pod runs, with no reconcile needed.
    assert.deepEqual(await records(), ['amb_client.json', 'amb_server.json'])
    const record = JSON.parse(await readFile(path.join(runDir, 'inpod/amb_server.json'), 'utf8')) as {add: {ips: string[]; netns: string; workload: {serviceAccount: string}}}
    assert.deepEqual(record.add.ips, [ips.server])
    assert.equal(record.add.workload.serviceAccount, 'server')
    assert.ok(record.add.netns.startsWith(netnsDir), record.add.netns)
  })

  await t.test('a connection between two enrolled pods goes through the node agent: access log and metrics name both SPIFFE IDs', async () => {
    const reply = await step('first mesh fetch', () => fetchWhenServed('client → server through the mesh', cluster, amb, 'client', ips.server))
    assert.equal(reply.out.trim(), 'hello from server')
    const agentPod = await nodeAgentPod()
    const line = await accessLogEntry(cluster, agentPod, `spiffe://${TD}/ns/${amb}/sa/client`)
    assert.equal(line['dst.identity'], `spiffe://${TD}/ns/${amb}/sa/server`)
    const forward = await cluster.portForward(NS, agentPod, 15_020)
    try {
      const metrics = await (await fetch(`http://127.0.0.1:${forward.port}/metrics`)).text()
      const opened = metrics.split('\n').find((text) => text.startsWith('istio_tcp_connections_opened_total{') && text.includes(`source_principal="spiffe://${TD}/ns/${amb}/sa/client"`))
      assert.ok(opened, metrics.split('\n').filter((text) => text.startsWith('istio_tcp')).join('\n'))
      assert.match(opened, new RegExp(`destination_principal="spiffe://${TD}/ns/${amb}/sa/server"`))
    } finally {
      await forward.close()
    }
  })

  await t.test('a connection to a Service\'s ClusterIP from an enrolled pod reaches the endpoint pod through the node agent', async () => {
    const clusterIp = service.spec!.clusterIP!
    const reply = await step('ClusterIP fetch', () => fetchWhenServed('client → web ClusterIP:80', cluster, amb, 'client', clusterIp, 80))
    assert.equal(reply.out.trim(), 'hello from server')
    const agentPod = await nodeAgentPod()
    await waitUntil('the access log line of the endpoint connection', async () => {
      const lines = (await cluster.podLogs(NS, agentPod)).split('\n').filter((text) => text.includes('"scope":"access"') && text.includes(`${ips.server}:${PORT}`))
      return lines.length >= 2 ? true : undefined // the direct connection before, and this one
    }, 30_000, 500)
  })

  await t.test('unenrolled and opted-out pods connect in plain text, outside the mesh', async () => {
    for (const [namespace, name] of [[plain, 'plain'], [amb, 'optout']]) {
      const result = await fetchFrom(cluster, namespace, name, ips.server)
      assert.equal(result.code, 0, `${name}: ${result.out}`)
      assert.equal(result.out.trim(), 'hello from server')
    }
  })

  await t.test('a DENY policy on the source\'s service account refuses it; another source still connects', async () => {
    const created = await step('policy create (applied by the agents)', () => ztctl(['policy', 'create', 'deny-client', '--action', 'DENY', '--from', `sa:${amb}/client`]))
    assert.equal(created.code, 0, created.out)
    const refused = await fetchFrom(cluster, amb, 'client', ips.server)
    assert.notEqual(refused.code, 0, `refused: ${refused.out}`)
    const agentPod = await nodeAgentPod()
    await waitUntil('a DENY line in the node agent\'s log', async () => (await cluster.podLogs(NS, agentPod)).includes('policy rejection') || undefined, 30_000, 500)
    assert.equal((await fetchFrom(cluster, plain, 'plain', ips.server)).code, 0, 'a source outside the mesh is not that service account')
    const deleted = await ztctl(['policy', 'delete', 'deny-client'])
    assert.equal(deleted.code, 0, deleted.out)
    assert.equal((await fetchFrom(cluster, amb, 'client', ips.server)).code, 0, 'allowed again once the policy is gone')
  })

  await t.test('labelling a namespace enrolls its running pod without a restart', async () => {
    await step('label → redirected (reconcile)', async () => {
      const namespace = await cluster.core.readNamespace({name: plain})
      namespace.metadata!.labels = {...namespace.metadata!.labels, 'ztctl.io/dataplane-mode': 'ambient'}
      await cluster.core.replaceNamespace({body: namespace, name: plain})
      await waitUntil('plain/plain redirected by the reconcile', async () => ((await records()).includes('plain_plain.json') ? true : undefined), 60_000, 500)
    })
    const pods = await cluster.core.readNamespacedPod({name: 'plain', namespace: plain})
    assert.equal(pods.status?.containerStatuses?.[0]?.restartCount, 0, 'no restart')
    const reply = await fetchWhenServed('plain → server through the mesh', cluster, plain, 'plain', ips.server, PORT, {timeoutMs: 30_000})
    assert.equal(reply.out.trim(), 'hello from server')
  })

  await t.test('a restarted node agent serves the redirected pods again from the shared records', async () => {
    const before = await nodeAgentPod()
    await step('node agent restart → mesh fetch', async () => {
      await cluster.core.deleteNamespacedPod({gracePeriodSeconds: 1, name: before, namespace: NS})
      const after = await waitUntil('a new node agent pod', async () => {
        const name = await nodeAgentPod()
        return name && name !== before ? name : undefined
      }, 120_000, 500)
      await cluster.waitForPodReady(NS, after)
      const reply = await fetchWhenServed('client → server through the new agent', cluster, amb, 'client', ips.server)
      assert.equal(reply.out.trim(), 'hello from server')
      await waitUntil('the new agent\'s access log line', async () => (await cluster.podLogs(NS, after)).includes(`"src.identity":"spiffe://${TD}/ns/${amb}/sa/client"`) || undefined, 30_000, 500)
    })
  })

  await t.test('the node agent\'s identity gets certificates only for service accounts of pods on its node', async () => {
    // A pod of service account "remote" bound to another node (no kubelet runs there: it stays Pending, but
    // the API says spec.nodeName=node-2, which is what the controller checks).
    await createServiceAccounts(cluster, amb, ['remote'])
    await cluster.core.createNamespacedPod({body: {...sleeper(amb, 'remote'), spec: {...sleeper(amb, 'remote').spec!, nodeName: 'node-2'}}, namespace: amb})
    // The node agent's own credentials, as it enrolls: its pod's projected token and the published CA.
    const agentPod = await nodeAgentPod()
    const token = await cluster.exec(NS, agentPod, ['cat', '/var/run/secrets/ztctl/token'])
    assert.equal(token.code, 0, token.stderr)
    const tokenFile = path.join(home, 'node-token')
    const caFile = path.join(home, 'root-cert.pem')
    await writeFile(tokenFile, token.stdout)
    await writeFile(caFile, (await cluster.core.readNamespacedConfigMap({name: 'ztctl-ca-root', namespace: NS})).data!['root-cert.pem']!)
    const controllers = await cluster.core.listNamespacedPod({labelSelector: 'app.kubernetes.io/name=ztctl-controller', namespace: NS})
    const forward = await cluster.portForward(NS, controllers.items[0]!.metadata!.name!, 15_012)
    try {
      const identity = await enrollWithServiceAccount({caFile, controller: `https://127.0.0.1:${forward.port}`, node: node.name, tokenFile})
      assert.equal(identity.name, `node-${node.name}`)
      const client = ControllerClient.fromIdentity(identity)
      try {
        const {csrPem} = await createKeyAndCsr('workload')
        const issued = await client.request<{spiffe: string}>('POST', '/v1/workload-certs', {csr: csrPem, namespace: amb, serviceAccount: 'server'})
        assert.equal(issued.spiffe, `spiffe://${TD}/ns/${amb}/sa/server`, 'a service account with a pod on this node')
        // (ztctl-system/ztctl-controller would be allowed: the controller's own pod runs on this node)
        for (const [namespace, serviceAccount] of [[amb, 'remote'], [amb, 'nobody'], [amb, 'default'], [plain, 'ghost'], ['kube-system', 'default']]) {
          await assert.rejects(client.request('POST', '/v1/workload-certs', {csr: csrPem, namespace, serviceAccount}), {code: 'ZT_ERR_FORBIDDEN'}, `${namespace}/${serviceAccount} has no pod on ${node.name}`)
        }
      } finally {
        client.close()
      }
    } finally {
      await forward.close()
    }
  })

  await t.test('uninstall restores the conflist byte for byte, removes the plugin, and running pods keep plain networking', async () => {
    const installedPods = (await cluster.core.listNamespacedPod({namespace: NS})).items.map((item) => item.metadata!.uid!)
    const result = await step('uninstall', () => ztctl(['uninstall', '-y']))
    assert.equal(result.code, 0, result.out)
    await step('conflist restored', () => waitUntil('the conflist restored', async () => ((await readFile(conflist)).equals(original) ? true : undefined), 120_000, 500))
    assert.ok(!existsSync(path.join(node.cniBinDir, 'ztctl-cni')), 'the plugin executable is gone')
    await waitUntil('every pod taken out of the mesh', async () => ((await records()).length === 0 ? true : undefined), 60_000, 500)
    for (const [namespace, name] of [[amb, 'client'], [plain, 'plain'], [amb, 'optout']]) {
      const reply = await fetchFrom(cluster, namespace, name, ips.server)
      assert.equal(reply.code, 0, `${name} after uninstall: ${reply.out}`)
      assert.equal(reply.out.trim(), 'hello from server')
    }

    // kubelet leaves the log dirs of pods deleted while it runs for its garbage collector, and the harness's
    // teardown only knows the pods it still has: remove those of the pods uninstall deleted (ours).
    const logDirs = existsSync('/var/log/pods') ? await readdir('/var/log/pods') : []
    for (const dir of logDirs.filter((name) => installedPods.some((uid) => name.endsWith(`_${uid}`)))) await rm(path.join('/var/log/pods', dir), {force: true, recursive: true})
  })
})

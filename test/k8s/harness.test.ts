// The Kubernetes harness itself, on a real cluster: our image runs in real pods (entrypoint, Node, the addons'
// tools), Services work through kube-proxy from pods and hostNetwork pods, pods reach the API server with
// in-cluster config, pods on two nodes reach each other, client-node's PortForward reaches a pod, and after
// teardown nothing of the cluster is left on the host (processes, mounts, bridges, cgroups, routes, chains, sysctls).
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {test} from 'node:test'

import type {V1Pod} from '@kubernetes/client-node'

import {K8S_TEST_TIMEOUT_MS, startCluster, ztctlImage} from '../helpers/k8s.js'
import {waitUntil} from '../helpers/wait.js'

const NS = 'harness'
const WEB_PORT = 8080
// answers every request with the pod's name: who answered is what the assertions check
const WEB_SERVER = `require('http').createServer((q, s) => s.end(require('os').hostname())).listen(${WEB_PORT})`
// in-cluster config (KUBERNETES_SERVICE_HOST + the mounted ServiceAccount token), as the controller will use it
const LIST_NAMESPACES = `import('@kubernetes/client-node').then(async (k) => {
  const kc = new k.KubeConfig(); kc.loadFromCluster()
  const list = await kc.makeApiClient(k.CoreV1Api).listNamespace()
  console.log(kc.getCurrentCluster().server, list.items.map((n) => n.metadata.name).join(','))
})`
const fetchFrom = (url: string): string[] => ['/usr/local/bin/node', '-e', `fetch(${JSON.stringify(url)}).then((r) => r.text()).then(console.log)`]

function pod(name: string, image: string, spec: Partial<NonNullable<V1Pod['spec']>>): V1Pod {
  return {metadata: {labels: {app: name}, name, namespace: NS}, spec: {terminationGracePeriodSeconds: 0, ...spec, containers: spec.containers!.map((c) => ({imagePullPolicy: 'Never', image, ...c}))}}
}

test('the Kubernetes harness: our image in real pods, Services, in-cluster API, two nodes, port-forward, nothing left after', {timeout: K8S_TEST_TIMEOUT_MS}, async (t) => {
  const image = await ztctlImage()
  const cluster = await startCluster(t, {nodes: 2})
  const [node1, node2] = cluster.nodes
  await cluster.importImage(image.tar)
  const {core} = cluster
  await cluster.createNamespace(NS)
  const web = await core.createNamespacedService({body: {metadata: {name: 'web'}, spec: {ports: [{port: 80, targetPort: WEB_PORT}], selector: {app: 'web'}}}, namespace: NS})
  const webUrl = `http://${web.spec!.clusterIP}:80/`
  await core.createNamespacedPod({body: pod('web', image.ref, {
    // the entrypoint with args only, as the DaemonSets run it
    containers: [{command: ['/usr/local/bin/node', '-e', WEB_SERVER], name: 'web', readinessProbe: {httpGet: {path: '/', port: WEB_PORT}, periodSeconds: 1}}],
    initContainers: [{args: ['version'], image: image.ref, imagePullPolicy: 'Never', name: 'version'}], nodeName: node1.name,
  }), namespace: NS})
  await core.createNamespacedPod({body: pod('client', image.ref, {containers: [{command: ['sleep', '3600'], name: 'client', securityContext: {capabilities: {add: ['NET_ADMIN']}}}],
    nodeName: node2.name}), namespace: NS})
  await core.createNamespacedPod({body: pod('host', image.ref, {containers: [{command: ['sleep', '3600'], name: 'host'}], hostNetwork: true, nodeName: node2.name}), namespace: NS})
  const started = Date.now()
  const webPod = await cluster.waitForPodReady(NS, 'web')
  await cluster.waitForPodReady(NS, 'client')
  await cluster.waitForPodReady(NS, 'host')
  t.diagnostic(`cluster up in ${cluster.timingsMs.total} ms (${JSON.stringify(cluster.timingsMs)}); three pods Ready ${Date.now() - started} ms after create`)

  await t.test('a pod from our image runs the CLI through the entrypoint, loads both addons, and carries iptables (legacy and nft), nft and ip', async () => {
    assert.match(await cluster.podLogs(NS, 'web', 'version'), /client version: 0\.1\.0 \(node v\d+/)
    const tools = {'ip -V': /iproute2/, 'iptables-legacy -V': /\(legacy\)/, 'iptables-nft -V': /\(nf_tables\)/, 'ip6tables-legacy-save -V': /legacy/,
      'ip6tables-nft-restore -V': /nf_tables/, 'nft --version': /nftables v/}
    for (const [command, expected] of Object.entries(tools)) {
      const result = await cluster.exec(NS, 'web', command.split(' '))
      assert.equal(result.code, 0, `${command}: ${result.stderr}`)
      assert.match(result.stdout + result.stderr, expected, command)
    }

    const addons = await cluster.exec(NS, 'web', ['/usr/local/bin/node', '-e', "for (const a of ['ztctl_netns', 'ztctl_hbone']) require(`/app/build/Release/${a}.node`); console.log('loaded')"])
    assert.equal(addons.stdout.trim(), 'loaded', `both addons load with the image's Node: ${addons.stderr}`)
    // with NET_ADMIN (as the CNI agent has it), both variants program the pod's own netns: tables, matches, targets
    for (const variant of ['legacy', 'nft']) {
      const rules = await cluster.exec(NS, 'client', ['sh', '-c', `iptables-${variant} -t nat -A OUTPUT -p tcp -m owner ! --uid-owner 1337 --dport 9 -j REDIRECT --to-ports 15001`
        + ` && iptables-${variant} -t mangle -A PREROUTING -m mark --mark 0x539 -j CONNMARK --set-mark 0x111 && iptables-${variant}-save`])
      assert.equal(rules.code, 0, rules.stderr)
      assert.match(rules.stdout, /-A OUTPUT -p tcp -m owner ! --uid-owner 1337 -m tcp --dport 9 -j REDIRECT --to-ports 15001/)
      assert.match(rules.stdout, /CONNMARK --set-xmark 0x111/)
    }
  })

  await t.test('pods get the pod network of their node and only routes inside the cluster', async () => {
    assert.equal(webPod.spec!.nodeName, node1.name)
    assert.ok(webPod.status!.podIP!.startsWith(node1.podCidr.replace(/0\/24$/, '')), `${webPod.status!.podIP} in ${node1.podCidr}`)
    const routes = await cluster.exec(NS, 'client', ['ip', '-4', 'route'])
    assert.doesNotMatch(routes.stdout, /^default/m, 'no default route: nothing can leave the machine')
    assert.match(routes.stdout, new RegExp(`^${cluster.clusterCidr.replaceAll('.', '\\.')} via ${node2.ip.replaceAll('.', '\\.')}`, 'm'))
  })

  await t.test('a ClusterIP Service reaches the pod from a pod on the other node, from the pod itself, and from a hostNetwork pod', async () => {
    for (const from of ['client', 'web', 'host']) {
      const result = await cluster.exec(NS, from, fetchFrom(webUrl))
      assert.equal(result.code, 0, `${from} → ${webUrl}: ${result.stderr}`)
      assert.equal(result.stdout.trim(), 'web', `${from} → Service web`)
    }
  })

  await t.test('a pod on node 2 reaches a pod on node 1 by its IP', async () => {
    const result = await cluster.exec(NS, 'client', fetchFrom(`http://${webPod.status!.podIP}:${WEB_PORT}/`))
    assert.equal(result.stdout.trim(), 'web', result.stderr)
  })

  await t.test('a pod reaches the API server in-cluster through the kubernetes Service (client-node loadFromCluster)', async () => {
    await core.createNamespacedServiceAccount({body: {metadata: {name: 'lister'}}, namespace: NS})
    const rbac = {apiVersion: 'rbac.authorization.k8s.io/v1', metadata: {name: 'harness-lister'}}
    await cluster.objects.create({...rbac, kind: 'ClusterRole', rules: [{apiGroups: [''], resources: ['namespaces'], verbs: ['list']}]})
    await cluster.objects.create({...rbac, kind: 'ClusterRoleBinding', roleRef: {apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'harness-lister'},
      subjects: [{kind: 'ServiceAccount', name: 'lister', namespace: NS}]})
    await waitUntil('the lister token', () => core.readNamespacedServiceAccount({name: 'lister', namespace: NS}).then((sa) => (sa.secrets?.length ? sa : undefined)))
    await core.createNamespacedPod({body: pod('lister', image.ref, {containers: [{command: ['sleep', '3600'], name: 'lister'}], serviceAccountName: 'lister'}), namespace: NS})
    await cluster.waitForPodReady(NS, 'lister')
    const result = await cluster.exec(NS, 'lister', ['/usr/local/bin/node', '-e', LIST_NAMESPACES])
    assert.equal(result.code, 0, result.stderr)
    const [server, names] = result.stdout.trim().split(' ')
    assert.equal(server, `https://${cluster.kubernetesServiceIp}:443`)
    assert.deepEqual(names.split(',').sort(), ['default', NS, 'kube-node-lease', 'kube-public', 'kube-system'])
  })

  await t.test('client-node PortForward reaches a pod port', async () => {
    const forward = await cluster.portForward(NS, 'web', WEB_PORT)
    try {
      const answers = await Promise.all([1, 2, 3].map(async () => (await fetch(`http://127.0.0.1:${forward.port}/`)).text()))
      assert.deepEqual(answers, ['web', 'web', 'web'])
    } finally {
      await forward.close()
    }
  })

  await t.test('after teardown nothing of the cluster is left and the sysctls are back', async () => {
    const kubelet = readFileSync(`/proc/${readFileSync(`${cluster.stateDir}/pids/n1-kubelet.pid`, 'utf8').trim()}/cmdline`, 'utf8')
    assert.match(kubelet, /kubelet/, 'the cluster is up before teardown')
    assert.equal(readFileSync('/proc/sys/kernel/panic', 'utf8').trim(), '10', 'kubelet has set its sysctls, so restoring them is a real check')
    // teardown() lists every process, mount, bridge, cgroup, route, KUBE- chain, pod log dir and sysctl of the run still there
    assert.deepEqual(await cluster.teardown(), [])
  })
})

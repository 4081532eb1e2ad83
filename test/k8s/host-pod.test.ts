// The host pod on a real cluster (issue 12 §4, OpenZiti's ziti-host): `install --set hostPod.enabled=true`
// runs Deployment ztctl-host as identity `host` (Secret ztctl-host, kept by the controller's leader); the
// service tcp/web it hosts towards web.default.svc.cluster.local:80 is reached by an identity outside the
// cluster — an agent on this host with an inbound tunnel — with no LoadBalancer or NodePort: the outside agent
// talks to the controller through a port-forward and to the host pod over HBONE. (No cluster DNS in the
// harness: the host pod gets a host alias for the web Service's name, what cluster DNS answers elsewhere.)
import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import {test} from 'node:test'

import {spawnAgentProcess} from '../helpers/agent-process.js'
import {K8S_TEST_TIMEOUT_MS, nodeValues, startCluster, ztctlImage} from '../helpers/k8s.js'
import {waitUntil} from '../helpers/wait.js'
import {enrollInCluster, meshCli} from './mesh-fixtures.js'

const WEB_APP = "require('http').createServer((q, s) => s.end('hello from web')).listen(8080)"

async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

test('host pod: an identity outside the cluster reaches web.default.svc.cluster.local:80 through the mesh', {timeout: K8S_TEST_TIMEOUT_MS}, async (t) => {
  const image = await ztctlImage()
  const cluster = await startCluster(t, {nodes: 1})
  await cluster.importImage(image.tar)
  const cli = await meshCli(t, cluster)
  const installed = await cli.ztctl(['install', '--profile', 'ambient', '-y', ...nodeValues(cluster.nodes[0]), '--set', 'cni.enabled=false', '--set', 'hostPod.enabled=true'])
  assert.match(installed, /✔ Host pod installed/)
  const {core, apps} = cluster

  // A plain web app in namespace default (not in the mesh), behind a Service.
  const web = await core.createNamespacedService({body: {metadata: {name: 'web'}, spec: {ports: [{port: 80, targetPort: 8080}], selector: {app: 'web'}}}, namespace: 'default'})
  await waitUntil('the default ServiceAccount token of default', async () => ((await core.readNamespacedServiceAccount({name: 'default', namespace: 'default'})).secrets?.length ?? 0) > 0, 60_000, 200)
  await core.createNamespacedPod({body: {metadata: {labels: {app: 'web'}, name: 'web'}, spec: {
    containers: [{command: ['/usr/local/bin/node', '-e', WEB_APP], image: image.ref, imagePullPolicy: 'Never', name: 'web', readinessProbe: {periodSeconds: 1, tcpSocket: {port: 8080}}}], terminationGracePeriodSeconds: 0,
  }}, namespace: 'default'})
  await cluster.waitForPodReady('default', 'web')

  // What cluster DNS would answer in the host pod.
  const host = await apps.readNamespacedDeployment({name: 'ztctl-host', namespace: 'ztctl-system'})
  host.spec!.template.spec!.hostAliases = [{hostnames: ['web.default.svc.cluster.local'], ip: web.spec!.clusterIP!}]
  await apps.replaceNamespacedDeployment({body: host, name: 'ztctl-host', namespace: 'ztctl-system'})
  await waitUntil('the host pod with the alias Ready', async () => {
    const pods = (await core.listNamespacedPod({labelSelector: 'app.kubernetes.io/name=ztctl-host', namespace: 'ztctl-system'})).items
    return pods.length === 1 && pods[0].spec?.hostAliases?.length === 1 && pods[0].status?.conditions?.some((condition) => condition.type === 'Ready' && condition.status === 'True')
  }, 180_000, 500)

  // The host identity serves it (the CLI waits until the host agent applied it).
  await cli.ztctl(['tunnel', 'open', 'outbound', 'tcp/web', '--agent', 'host', '--target', 'web.default.svc.cluster.local:80'])

  // An identity outside the cluster: an agent on this host, its controller through a port-forward.
  await cluster.createNamespace('enroll')
  const {outside} = await enrollInCluster(cli, cluster, image.ref, 'enroll', ['outside'])
  const identityFile = path.join(cli.home, 'outside.json')
  await writeFile(identityFile, outside, {mode: 0o600})
  const controllerPod = (await core.listNamespacedPod({labelSelector: 'app.kubernetes.io/name=ztctl-controller', namespace: 'ztctl-system'})).items[0]
  const forward = await cluster.portForward('ztctl-system', controllerPod.metadata!.name!, 15_012)
  t.after(() => forward.close())
  const agent = await spawnAgentProcess(t, {args: ['--controller', `https://127.0.0.1:${forward.port}`], env: {HOME: cli.home, NO_COLOR: '1', ZTCTL_HOME: cli.home}, identityFile, readyFile: path.join(cli.home, 'outside.ready.json')})
  const port = await freePort()
  await cli.ztctl(['tunnel', 'open', 'inbound', 'tcp/web', '--agent', 'outside', '--listen', `127.0.0.1:${port}`])

  const body = await waitUntil('web through the mesh', async () => (await fetch(`http://127.0.0.1:${port}/`, {signal: AbortSignal.timeout(5000)})).text(), 30_000, 500)
  assert.equal(body, 'hello from web')
  // The outside agent's own counters: the connection went as mutual TLS to the identity `host`.
  const metrics = await (await fetch(`http://${agent.ready.addresses.metrics}/metrics`)).text()
  const opened = metrics.split('\n').filter((line) => line.startsWith('istio_tcp_connections_opened_total{'))
  assert.ok(opened.some((line) => line.includes('destination_principal="spiffe://cluster.local/identity/host"')), `the outside agent reached the host identity: ${opened.join('\n') || metrics.slice(0, 2000)}`)

  // Before the cluster goes: the agent would redial its controller through a forward to an API server that is gone.
  agent.child.kill('SIGKILL')
  await agent.exited
  forward.close()
})

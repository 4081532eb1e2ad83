// The hub on a real cluster (issue 15, `install --set hub.enabled=true`): Deployment + Service ztctl-hub run
// `hub run` as identity `hub` (Secret ztctl-hub, issued and kept by the controller's leader); the node agent
// attaches to it by the Service's address (proxy-status shows the attachment connected, from the
// controller's side); verify-install checks it. An agent on this host that opens no port (`--no-listen`)
// attaches through a port-forward to the hub pod, and the admin's `ztctl script run` on this host reaches it
// through the in-cluster hub, end-to-end TLS between the admin's certificate and the agent's. uninstall
// removes the hub's objects.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'

import {RUN_JS, runCli} from '../helpers/controller.js'
import {K8S_TEST_TIMEOUT_MS, nodeValues, startCluster, ztctlImage} from '../helpers/k8s.js'
import {waitUntil} from '../helpers/wait.js'
import {dump} from '../hub/helpers.js'
import {enrollInCluster, meshCli} from './mesh-fixtures.js'

interface StatusAgent {name: string; sync?: {hubs?: {hub?: string; lastError?: string; state: string}[]}}

test('hub.enabled: the in-cluster hub takes the node agents and a zero-port agent outside, and relays apps to it', {timeout: K8S_TEST_TIMEOUT_MS}, async (t) => {
  const image = await ztctlImage()
  const cluster = await startCluster(t, {nodes: 1})
  await cluster.importImage(image.tar)
  const cli = await meshCli(t, cluster)
  const installed = await cli.ztctl(['install', '--profile', 'ambient', '-y', ...nodeValues(cluster.nodes[0]), '--set', 'cni.enabled=false', '--set', 'hub.enabled=true'])
  assert.match(installed, /✔ Hub installed/)
  const {core} = cluster
  const hubPods = await core.listNamespacedPod({labelSelector: 'app.kubernetes.io/name=ztctl-hub', namespace: 'ztctl-system'})
  assert.equal(hubPods.items.length, 1)
  const hubPod = hubPods.items[0].metadata!.name!

  // The node agent attached to the hub, as it reported to the controller.
  const status = (): Promise<StatusAgent[]> => cli.ztctl(['proxy-status', '-o', 'json']).then((text) => (JSON.parse(text) as {agents: StatusAgent[]}).agents)
  const podLogs = async (selector: string): Promise<string> => {
    const pods = (await core.listNamespacedPod({labelSelector: `app.kubernetes.io/name=${selector}`, namespace: 'ztctl-system'})).items
    return (await Promise.all(pods.map((pod) => core.readNamespacedPodLog({name: pod.metadata!.name!, namespace: 'ztctl-system'}).catch((error: Error) => error.message)))).join('\n')
  }

  const nodeAgents = await waitUntil('the node agent attached to the hub', async () => {
    const agents = await status()
    return agents.length > 0 && agents.every((agent) => agent.sync?.hubs?.some((hub) => hub.hub === 'hub' && hub.state === 'connected')) ? agents : undefined
  }, 60_000, 1000).catch(async (error: Error) => assert.fail(`${error.message}: ${JSON.stringify(await status())}\n--- node agent ---\n${(await podLogs('ztctl-node')).slice(-4000)}\n--- hub ---\n${(await podLogs('ztctl-hub')).slice(-3000)}`))
  const verified = await cli.ztctl(['verify-install'])
  assert.match(verified, /✔ Deployment: ztctl-hub\.ztctl-system checked successfully/)
  assert.match(verified, /✔ Service endpoints: ztctl-hub\.ztctl-system 1 ready address/)

  // A zero-port agent on this host: controller and hub through port-forwards.
  await cluster.createNamespace('enroll')
  const {outside} = await enrollInCluster(cli, cluster, image.ref, 'enroll', ['outside'])
  const identityFile = path.join(cli.home, 'outside.json')
  await writeFile(identityFile, outside, {mode: 0o600})
  const controllerPod = (await core.listNamespacedPod({labelSelector: 'app.kubernetes.io/name=ztctl-controller', namespace: 'ztctl-system'})).items[0]
  const controllerForward = await cluster.portForward('ztctl-system', controllerPod.metadata!.name!, 15_012)
  const hubForward = await cluster.portForward('ztctl-system', hubPod, 15_009)
  t.after(() => {
    controllerForward.close()
    hubForward.close()
  })
  const socket = path.join(cli.home, 'outside.sock')
  const agent = spawn(process.execPath, [RUN_JS, 'agent', 'run', '-i', identityFile, '--controller', `https://127.0.0.1:${controllerForward.port}`, '--no-listen',
    '--hub', `hub@127.0.0.1:${hubForward.port}`, '--admin', `unix:${socket}`], {env: {...process.env, HOME: cli.home, NO_COLOR: '1', ZTCTL_HOME: cli.home}, stdio: ['ignore', 'pipe', 'pipe']})
  let output = ''
  agent.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  agent.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise((resolve) => agent.once('exit', resolve))
  t.after(() => {
    agent.kill('SIGKILL')
  })
  await waitUntil('the outside agent attached to the in-cluster hub', async () => (await dump(socket).catch(() => undefined))?.hubs.some((hub) => hub.hub === 'hub' && hub.state === 'connected'), 60_000, 500)
    .catch((error: Error) => assert.fail(`${error.message}\n${output}`))

  // The admin runs a program on it through the hub (the directory names the hub as the agent dials it).
  await cli.ztctl(['script', 'config', '--agent', 'outside', '--add-user', '*', '--add-command', 'sh'])
  const env = {...process.env, HOME: cli.home, KUBECONFIG: cluster.kubeconfigPath, NO_COLOR: '1', ZTCTL_HOME: cli.home}
  const ran = await waitUntil('script run through the hub', async () => {
    const result = await runCli(['script', 'run', 'outside', '--no-stdin', '--', 'sh', '-c', 'echo through-the-hub-$((6 * 7)); exit 4'], env, {cwd: cli.home, timeoutMs: 60_000})
    return result.code === 4 ? result : undefined
  }, 60_000, 1000)
  assert.equal(ran.stdout.trim(), 'through-the-hub-42')
  const hubLog = await core.readNamespacedPodLog({name: hubPod, namespace: 'ztctl-system'})
  assert.match(hubLog, /"message":"connection complete"[^\n]*"dst.workload":"outside"|"dst.workload":"outside"[^\n]*"message":"connection complete"/, 'the hub relayed it')
  assert.ok(nodeAgents.length >= 1)

  // Before the cluster goes: the agent would redial through forwards to an API server that is gone.
  agent.kill('SIGKILL')
  await exited
  controllerForward.close()
  hubForward.close()

  await cli.ztctl(['uninstall', '-y'])
  const left = await core.listNamespacedPod({labelSelector: 'app.kubernetes.io/name=ztctl-hub', namespace: 'ztctl-system'}).catch(() => ({items: []}))
  assert.equal(left.items.length, 0, 'the hub is gone')
  const services = await core.listNamespacedService({namespace: 'ztctl-system'}).catch(() => ({items: []}))
  assert.ok(!services.items.some((service) => service.metadata?.name === 'ztctl-hub'), 'its Service too')
})

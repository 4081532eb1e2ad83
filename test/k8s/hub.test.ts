// The hub on a real cluster (issue 15, `install --set hub.enabled=true`): Deployment + Service ztctl-hub run
// `hub run` as identity `hub` (Secret ztctl-hub, issued and kept by the controller's leader); the node agent
// attaches to it by the Service's address (proxy-status shows the attachment connected, from the
// controller's side); verify-install checks it. An agent on this host that opens no port (`--no-listen`)
// attaches through a port-forward to the hub pod, and the admin's `ztctl script run` on this host reaches it
// through the in-cluster hub, end-to-end TLS between the admin's certificate and the agent's. When the hub's
// Secret gets a newly issued certificate (written through the API), the kubelet updates the volume and the
// hub presents that certificate to new handshakes, no restart, its attachments kept; deleted, the identity is
// re-created by the controller and the hub ends up serving the Secret's new certificate. verify-install counts
// the attached agents, and says why when the hub is scaled to 0. uninstall removes the hub's objects.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'

import {renewIdentity} from '../../src/lib/client/renew.js'
import type {IdentityFile} from '../../src/lib/identity/file.js'
import type {Check} from '../../src/lib/kube/install/verify.js'
import {certInfo} from '../../src/lib/pki/cert-info.js'
import {RUN_JS, runCli} from '../helpers/controller.js'
import {K8S_TEST_TIMEOUT_MS, nodeValues, startCluster, ztctlImage} from '../helpers/k8s.js'
import {servedCertificate} from '../helpers/tls-probe.js'
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
  const nodeAgent = `node-${cluster.nodes[0]!.name}` // the node agent's identity
  assert.match(verified, new RegExp(`^✔ Hub attachments: ztctl-hub\\.ztctl-system 1 of 1 agent attached \\(${nodeAgent}\\)$`, 'm'))

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

  // A newly issued certificate in the hub's Secret, written through the API: served without a restart.
  const secretName = {name: 'ztctl-hub', namespace: 'ztctl-system'}
  const hubAddress = `127.0.0.1:${hubForward.port}`
  const client = JSON.parse(outside) as IdentityFile
  const secret = await core.readNamespacedSecret(secretName)
  const current = JSON.parse(Buffer.from(secret.data!['identity.json']!, 'base64').toString('utf8')) as IdentityFile
  assert.equal((await servedCertificate(hubAddress, client)).serial, certInfo(current.cert).serial.toLowerCase(), 'the hub serves its Secret\'s certificate')
  const renewed = await renewIdentity({...current, controller: `https://127.0.0.1:${controllerForward.port}`})
  const renewedSerial = certInfo(renewed.cert).serial.toLowerCase()
  const renewedText = JSON.stringify({...renewed, controller: current.controller}, null, 2) + '\n'
  await core.replaceNamespacedSecret({...secretName, body: {...secret, data: {...secret.data, 'identity.json': Buffer.from(renewedText).toString('base64')}}})
  const written = Date.now()
  await waitUntil('the hub serves the certificate written into its Secret', async () => (await servedCertificate(hubAddress, client)).serial === renewedSerial, 150_000, 1000)
    .catch(async (error: Error) => assert.fail(`${error.message}\n--- hub ---\n${(await podLogs('ztctl-hub')).slice(-3000)}`))
  t.diagnostic(`the hub served the Secret's new certificate ${Math.round((Date.now() - written) / 1000)} s after the API write (the kubelet's volume sync)`)
  const reloadedLog = await core.readNamespacedPodLog({name: hubPod, namespace: 'ztctl-system'})
  assert.match(reloadedLog, /identity file reloaded/)
  const hubNow = (await core.readNamespacedPod({name: hubPod, namespace: 'ztctl-system'})).status!.containerStatuses!
  assert.equal(hubNow[0]!.restartCount, 0, 'no restart')
  assert.ok((await dump(socket)).hubs.some((hub) => hub.hub === 'hub' && hub.state === 'connected'), 'the outside agent stayed attached')
  const again = await runCli(['script', 'run', 'outside', '--no-stdin', '--', 'sh', '-c', 'echo still-$((6 * 7))'], env, {cwd: cli.home, timeoutMs: 60_000})
  assert.equal(again.stdout.trim(), 'still-42', `through the hub after the swap: ${again.stderr}`)

  // Deleted, the identity is re-created by the controller's leader (housekeeping, every 60 s), which writes
  // the Secret again: the hub ends up serving that certificate, and the node agent attaches to it again.
  await cli.ztctl(['identity', 'delete', 'hub', '-y'])
  const identityIn = (from: typeof secret): IdentityFile => JSON.parse(Buffer.from(from.data!['identity.json']!, 'base64').toString('utf8')) as IdentityFile
  const recreated = await waitUntil('the controller wrote a new hub identity into the Secret', async () => {
    const serial = certInfo(identityIn(await core.readNamespacedSecret(secretName)).cert).serial.toLowerCase()
    return serial === renewedSerial ? undefined : serial
  }, 150_000, 2000)
  const deleted = Date.now()
  await waitUntil('the hub serves the re-created certificate', async () => (await servedCertificate(hubAddress, client)).serial === recreated, 150_000, 1000)
    .catch(async (error: Error) => assert.fail(`${error.message}\n--- hub ---\n${(await podLogs('ztctl-hub')).slice(-3000)}`))
  t.diagnostic(`the hub served the re-created identity's certificate ${Math.round((Date.now() - deleted) / 1000)} s after the controller wrote it`)
  await waitUntil('the node agent attached to the re-created hub', async () => {
    const agents = await status()
    return agents.some((each) => each.name === nodeAgents[0]!.name && each.sync?.hubs?.some((hub) => hub.hub === 'hub' && hub.state === 'connected'))
  }, 60_000, 1000).catch(async (error: Error) => assert.fail(`${error.message}: ${JSON.stringify(await status())}\n--- node agent ---\n${(await podLogs('ztctl-node')).slice(-3000)}`))

  // verify-install -o json names the attached agents.
  const json = JSON.parse(await cli.ztctl(['verify-install', '-o', 'json'])) as {checks: Check[]}
  const attached = json.checks.find((check) => check.kind === 'Hub attachments')!
  assert.deepEqual(attached.hub?.expected, [nodeAgent])
  assert.deepEqual(attached.hub?.attached, [nodeAgent])

  // Before the cluster goes: the agent would redial through forwards to an API server that is gone.
  agent.kill('SIGKILL')
  await exited
  controllerForward.close()
  hubForward.close()

  // With the hub scaled to 0, verify-install fails and says why, from the node agent's side too.
  const deployment = await cluster.apps.readNamespacedDeployment({name: 'ztctl-hub', namespace: 'ztctl-system'})
  await cluster.apps.replaceNamespacedDeployment({body: {...deployment, spec: {...deployment.spec!, replicas: 0}}, name: 'ztctl-hub', namespace: 'ztctl-system'})
  await waitUntil('the hub pod is gone', async () => (await core.listNamespacedPod({labelSelector: 'app.kubernetes.io/name=ztctl-hub', namespace: 'ztctl-system'})).items.length === 0, 90_000, 1000)
  const failed = await runCli(['verify-install'], env, {cwd: cli.home, timeoutMs: 120_000})
  assert.equal(failed.code, 1, failed.stdout + failed.stderr)
  const line = failed.stdout.split('\n').find((text) => text.startsWith('✘ Hub attachments'))
  assert.ok(line, failed.stdout)
  assert.match(line, new RegExp(`^✘ Hub attachments: ztctl-hub\\.ztctl-system: 0 of 1 agent attached; the hub has no running pod .*; not attached: ${nodeAgent} \\((connecting|down) to `))
  assert.match(failed.stdout, /look at: kubectl -n ztctl-system get deployment ztctl-hub/)
  assert.match(failed.stdout, /look at: ztctl proxy-config hubs --node NODE/)

  await cli.ztctl(['uninstall', '-y'])
  const left = await core.listNamespacedPod({labelSelector: 'app.kubernetes.io/name=ztctl-hub', namespace: 'ztctl-system'}).catch(() => ({items: []}))
  assert.equal(left.items.length, 0, 'the hub is gone')
  const services = await core.listNamespacedService({namespace: 'ztctl-system'}).catch(() => ({items: []}))
  assert.ok(!services.items.some((service) => service.metadata?.name === 'ztctl-hub'), 'its Service too')
})

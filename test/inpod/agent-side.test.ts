// The node agent's in-pod side with real namespaces and real iptables REDIRECT rules (root): the CNI
// socket (hello, add/delete/snapshot acks, garbage), listeners 15001/15006/15008/15053 inside the pod,
// outbound passthrough and inbound plaintext delivered from inside the pod with the skip mark, and a
// restarted agent re-creating its workloads from the state directory.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {mkdir, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {test, type TestContext} from 'node:test'

import type {InpodAdd} from '../../src/lib/inpod/protocol.js'
import {createTopology, type Topology, type TopoPod} from '../helpers/netns.js'
import {createMesh, startAgent, tempDir, waitFor} from '../proxy/helpers.js'
import {RUN_JS} from '../helpers/controller.js'
import {CniClient, INPOD_TEST_DATA_PATH, outboundRedirectPackets, podApp, podFetch, redirectPod} from './fixtures.js'

const EMPTY_SNAPSHOT = {agent: {}, identity: {}, inbound: {}, outbound: {}, policy: {}, revocation: {}}

function addFor(pod: TopoPod, uid = `uid-${pod.name}`): InpodAdd {
  return {type: 'add', uid, workload: {namespace: 'default', name: pod.name, serviceAccount: 'web'}, netns: pod.netnsPath, ips: [pod.ip]}
}

async function listeningPorts(topo: Topology, pod: TopoPod): Promise<number[]> {
  const out = await topo.execOk(pod.netns, 'ss', ['-Htln'])
  return [...out.matchAll(/:(\d+)\s/g)].map((match) => Number(match[1])).filter((port) => port >= 15000 && port < 16000).sort()
}

async function startNodeAgent(t: TestContext, dir: string, name: string) {
  const mesh = await createMesh()
  const socketPath = path.join(dir, `${name}.sock`)
  const stateDir = path.join(dir, 'state')
  const running = await startAgent(t, dir, await mesh.identity(name), EMPTY_SNAPSHOT as never, {dataPath: INPOD_TEST_DATA_PATH, inpod: {socketPath, stateDir}})
  return {...running, socketPath, stateDir}
}

test('CNI socket: hello, add opens 15001/15006/15008/15053 in the pod, traffic both ways goes through the agent, delete closes', async (t) => {
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 2})
  const [pod1, pod2] = topo.pods as [TopoPod, TopoPod]
  const dir = await tempDir(t)
  await podApp(t, pod2, 8080)
  await podApp(t, pod1, 8081)
  const node = await startNodeAgent(t, dir, 'node1')

  const cni = await CniClient.connect(node.socketPath)
  t.after(() => cni.close())
  assert.deepEqual(await cni.next(), {type: 'hello', version: 1})
  assert.deepEqual(await cni.request(addFor(pod1)), {type: 'ack', uid: `uid-${pod1.name}`})
  assert.deepEqual(await listeningPorts(topo, pod1), [15001, 15006, 15008, 15053])
  assert.deepEqual(await cni.request(addFor(pod1)), {type: 'ack', uid: `uid-${pod1.name}`}, 'add is idempotent')
  await redirectPod(topo, pod1)

  // Outbound: pod1's unmarked connection to pod2 is captured at 15001 and passed through.
  const before = await outboundRedirectPackets(topo, pod1)
  assert.equal(await podFetch(pod1, pod2.ip, 8080), `${pod2.name} saw ${pod1.ip}`)
  assert.ok((await outboundRedirectPackets(topo, pod1)) > before, 'the connection was redirected to 15001')
  // Inbound: pod2 → pod1:8081 is redirected to 15006; the agent delivers it from inside pod1, so the
  // app sees pod1's own address as the source.
  assert.equal(await podFetch(pod2, pod1.ip, 8081), `${pod1.name} saw ${pod1.ip}`)

  // Delete: listeners gone, redirected traffic now fails (nothing on 15001) — proof it went through us.
  assert.deepEqual(await cni.request({type: 'delete', uid: `uid-${pod1.name}`}), {type: 'ack', uid: `uid-${pod1.name}`})
  assert.deepEqual(await listeningPorts(topo, pod1), [])
  await assert.rejects(podFetch(pod1, pod2.ip, 8080), /ECONNREFUSED/)

  // Snapshot: adds the listed, removes the rest.
  assert.deepEqual(await cni.request({type: 'snapshot', workloads: [addFor(pod2)]}), {type: 'ack'})
  assert.deepEqual(await listeningPorts(topo, pod2), [15001, 15006, 15008, 15053])
  assert.deepEqual(await cni.request({type: 'snapshot', workloads: []}), {type: 'ack'})
  assert.deepEqual(await listeningPorts(topo, pod2), [])
  // A netns that does not exist: an ack carrying the error, the agent keeps going.
  const bad = await cni.request({...addFor(pod1, 'ghost'), netns: '/var/run/netns/ztctl-no-such-netns'})
  assert.match(bad.error ?? '', /No such file/)
})

test('CNI socket: garbage gets an error ack and a closed connection; the agent keeps serving', async (t) => {
  const dir = await tempDir(t)
  const node = await startNodeAgent(t, dir, 'node1')
  for (const garbage of ['not json\n', '{"type":"add","uid":1}\n', `${'x'.repeat(70 * 1024)}\n`, '{"type":"hello","version":1}\n']) {
    const cni = await CniClient.connect(node.socketPath)
    assert.equal((await cni.next())?.type, 'hello')
    cni.socket.write(garbage)
    const reply = await cni.next()
    assert.equal(reply?.type, 'ack')
    assert.ok(reply?.type === 'ack' && reply.error, `an error for ${garbage.slice(0, 30)}`)
    await waitFor('the agent closes the connection', () => cni.closed)
  }

  const cni = await CniClient.connect(node.socketPath)
  t.after(() => cni.close())
  assert.equal((await cni.next())?.type, 'hello')
  assert.deepEqual(await cni.request({type: 'snapshot', workloads: []}), {type: 'ack'})
})

test('a restarted agent re-creates its workloads from the state directory', async (t) => {
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 2})
  const [pod1, pod2] = topo.pods as [TopoPod, TopoPod]
  const dir = await tempDir(t)
  await podApp(t, pod2, 8080)
  // What `ztctl redirect add` leaves behind: the add message (plus saved rules) per uid.
  const stateDir = path.join(dir, 'state')
  await mkdir(stateDir, {recursive: true})
  await writeFile(path.join(stateDir, `uid-${pod1.name}.json`), JSON.stringify({add: addFor(pod1), savedRules: {}}))
  await writeFile(path.join(stateDir, 'broken.json'), '{not json')
  await redirectPod(topo, pod1)
  await assert.rejects(podFetch(pod1, pod2.ip, 8080), /ECONNREFUSED/, 'redirected with no agent: refused')

  const first = await startNodeAgent(t, dir, 'node1')
  assert.deepEqual(await listeningPorts(topo, pod1), [15001, 15006, 15008, 15053])
  assert.equal(await podFetch(pod1, pod2.ip, 8080), `${pod2.name} saw ${pod1.ip}`)
  assert.ok(first.logs.some((line) => String(line.problem ?? '').startsWith('broken.json')), 'the broken state file is reported')
  await first.agent.shutdown('restart')

  const started = Date.now()
  await startNodeAgent(t, dir, 'node1')
  assert.ok(Date.now() - started < 5000)
  assert.equal(await podFetch(pod1, pod2.ip, 8080), `${pod2.name} saw ${pod1.ip}`)
})

test('`ztctl agent run --inpod-socket` (a real process) serves the CNI socket and exits cleanly on SIGTERM', async (t) => {
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 2})
  const [pod1, pod2] = topo.pods as [TopoPod, TopoPod]
  const dir = await tempDir(t)
  await podApp(t, pod2, 8080)
  const mesh = await createMesh()
  const files = {config: path.join(dir, 'config.json'), identity: path.join(dir, 'node1.json'), socket: path.join(dir, 'inpod.sock')}
  await writeFile(files.identity, JSON.stringify(await mesh.identity('node1')), {mode: 0o600})
  await writeFile(files.config, JSON.stringify(EMPTY_SNAPSHOT))
  const child = spawn(process.execPath, [RUN_JS, 'agent', 'run', '-i', files.identity, '--config', files.config, '--hbone', '127.0.0.1:0', '--admin', '127.0.0.1:0',
    '--metrics', '127.0.0.1:0', '--readiness', '127.0.0.1:0', '--inpod-socket', files.socket, '--inpod-state-dir', path.join(dir, 'state')], {stdio: ['ignore', 'pipe', 'pipe']})
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk))
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  await waitFor(`the inpod listener (output: ${output})`, () => output.includes('"component":"inpod"'), 20_000)
  const cni = await CniClient.connect(files.socket)
  t.after(() => cni.close())
  assert.equal((await cni.next())?.type, 'hello')
  assert.deepEqual(await cni.request(addFor(pod1)), {type: 'ack', uid: `uid-${pod1.name}`})
  await redirectPod(topo, pod1)
  assert.equal(await podFetch(pod1, pod2.ip, 8080), `${pod2.name} saw ${pod1.ip}`)
  child.kill('SIGTERM')
  assert.equal(await exited, 0)
  assert.deepEqual(await listeningPorts(topo, pod1), [], 'the stopped agent left no listener in the pod')
})

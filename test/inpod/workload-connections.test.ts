// Per-pod accounting and certificate waits on both in-pod engines (root): two node agents in this
// process, pods in network namespaces with the in-pod rules. A pod's `connections` (the admin dump's
// workloads, `proxy-config workloads`) counts every open connection it is an end of, whichever engine
// carries it (HBONE out and in, the local fast path, passthrough), and drops after close. Until a pod's
// certificate is issued its 15008 holds new connections (bounded), and while issuing fails it refuses
// them; once issued they go through.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {once} from 'node:events'
import net from 'node:net'
import {test} from 'node:test'
import {promisify} from 'node:util'

import {listenTcp, tcpSocket} from '../../src/lib/netns/native.js'
import {RUN_JS} from '../helpers/controller.js'
import {createTopology, type TopoPod} from '../helpers/netns.js'
import {waitFor} from '../proxy/helpers.js'
import {expectCounts, type InpodMeshNodes, podApp, podFetch, startInpodMesh} from './fixtures.js'

/** An app inside POD on PORT that greets each connection and keeps it open until the client ends it. */
async function holdingApp(t: {after(fn: () => void): void}, pod: TopoPod, port: number): Promise<void> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {})
    socket.write('hello')
    socket.on('end', () => socket.end())
  })
  t.after(() => server.close())
  await new Promise<void>((resolve) => server.listen({fd: listenTcp('0.0.0.0', port, {netns: pod.netnsPath})}, resolve))
}

/** A connection from inside POD (an ordinary app, no mark) that has read the greeting. */
async function openFrom(t: {after(fn: () => void): void}, pod: TopoPod, host: string, port: number): Promise<net.Socket> {
  const socket = new net.Socket({fd: tcpSocket(4, {netns: pod.netnsPath})})
  t.after(() => socket.destroy())
  socket.connect(port, host)
  const [greeting] = (await once(socket, 'data')) as [Buffer]
  assert.equal(greeting.toString(), 'hello')
  return socket
}

async function closeAndExpectZero(setup: InpodMeshNodes, socket: net.Socket, pods: TopoPod[]): Promise<void> {
  socket.end()
  await once(socket, 'close')
  await expectCounts(setup, 'the counts back to 0 after close', pods.map((pod) => [pod, 0]))
}

for (const dataPath of ['native', 'node'] as const) test(`a pod's open connections are counted on the ${dataPath} engine, and leave the count on close`, async (t) => {
  const topo = await createTopology(t, {nodes: 2, podsPerNode: 2})
  const [n1p1, n1p2, n2p1, n2p2] = topo.pods as [TopoPod, TopoPod, TopoPod, TopoPod]
  // n2p2 stays outside the mesh (passthrough).
  const setup = await startInpodMesh(t, topo, {dataPath, meshPods: [n1p1, n1p2, n2p1]})
  await holdingApp(t, n2p1, 8080)
  await holdingApp(t, n1p1, 8081)
  await holdingApp(t, n2p2, 8082)
  await expectCounts(setup, 'no connections yet', [[n1p1, 0], [n1p2, 0], [n2p1, 0]])
  assert.equal(setup.nodes[0]!.agent.configDump().workloads.find((workload) => workload.name === n2p1.name)?.connections, undefined, 'a pod served elsewhere has no count here')

  // HBONE between nodes: the source pod's count on node 1, the destination's on node 2.
  const hbone = await openFrom(t, n1p1, n2p1.ip, 8080)
  await expectCounts(setup, 'the HBONE connection counted at both ends', [[n1p1, 1], [n2p1, 1]])
  const {stdout} = await promisify(execFile)(process.execPath, [RUN_JS, 'proxy-config', 'workloads', '--admin', setup.nodes[0]!.agent.addresses.admin!])
  assert.match(stdout, /PROTOCOL\s+CONNECTIONS/)
  assert.match(stdout, new RegExp(`${n1p1.name}\\s+${n1p1.ip.replaceAll('.', '\\.')}\\s+node1\\s+None\\s+HBONE\\s+1\\b`), stdout)
  assert.match(stdout, new RegExp(`${n2p1.name}\\s+${n2p1.ip.replaceAll('.', '\\.')}\\s+node2\\s+None\\s+HBONE\\s+-`), stdout)
  await closeAndExpectZero(setup, hbone, [n1p1, n2p1])

  // Two pods of node 1: the local fast path counts for both.
  const local = await openFrom(t, n1p2, n1p1.ip, 8081)
  await expectCounts(setup, 'the local connection counted for both pods', [[n1p1, 1], [n1p2, 1]])
  await closeAndExpectZero(setup, local, [n1p1, n1p2])

  // Out of the mesh: passthrough, the source pod's.
  const plain = await openFrom(t, n1p1, n2p2.ip, 8082)
  await expectCounts(setup, 'the passthrough connection counted', [[n1p1, 1], [n1p2, 0]])
  await closeAndExpectZero(setup, plain, [n1p1])
})

for (const dataPath of ['native', 'node'] as const) test(`a pod's 15008 without its certificate (${dataPath}): holds connections while issuing, refuses while issuing fails, serves once issued`, async (t) => {
  const topo = await createTopology(t, {nodes: 2, podsPerNode: 2})
  const [n1p1, , n2p1, n2p2] = topo.pods as [TopoPod, TopoPod, TopoPod, TopoPod]
  let releaseDb!: () => void
  const dbIssued = new Promise<void>((resolve) => (releaseDb = resolve))
  let failOther = true
  const setup = await startInpodMesh(t, topo, {
    async beforeIssue({serviceAccount}) {
      if (serviceAccount === 'db') await dbIssued
      if (serviceAccount === 'other' && failOther) throw new Error('the controller is unavailable (test)')
    },
    dataPath,
    meshPods: [n1p1, n2p1, n2p2],
  })
  await podApp(t, n2p1, 8080)
  await podApp(t, n2p2, 8082)

  // n2p1 (sa db): its certificate is being issued; a connection waits for it, then goes through.
  const waiting = podFetch(n1p1, n2p1.ip, 8080, 15_000)
  await new Promise((resolve) => setTimeout(resolve, 500))
  assert.ok(!setup.issued.some((spiffe) => spiffe.endsWith('/sa/db')), 'db not issued yet')
  releaseDb()
  assert.equal(await waiting, `${n2p1.name} saw ${n2p1.ip}`)

  // n2p2 (sa other): issuing fails; its connections are refused at once, not left waiting.
  const node2 = setup.nodes[1]!
  await assert.rejects(podFetch(n1p1, n2p2.ip, 8082, 8000), (error: Error) => /ECONNRESET|ECONNREFUSED|socket hang up/.test(error.message) || assert.fail(`refused, not ${error.message}`))
  assert.ok(node2.logs.some((line) => line.message === 'no workload certificate: refusing HBONE' && line.uid === `uid-${n2p2.name}`))
  // The issue is asked again after a pause (ISSUE_RETRY_MS); once it works, so does the pod.
  failOther = false
  const served = await waitFor('n2p2 served once its certificate is issued', () => podFetch(n1p1, n2p2.ip, 8082, 3000).catch(() => undefined), 15_000)
  assert.equal(served, `${n2p2.name} saw ${n2p2.ip}`)
})

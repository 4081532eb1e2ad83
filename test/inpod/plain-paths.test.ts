// The in-pod plain paths on both engines (root): plaintext into a pod (15006), the local fast path (both pods
// on one agent) and outbound passthrough. On the native engine the addon moves their bytes as plain ↔ plain
// relays (the relay count proves it; the node:net fallback has none); either way megabytes cross intact both
// ways, a FIN crosses while the other direction still flows, the pods' CONNECTIONS counts go up and back to
// 0, the local fast path writes its access line and metrics, and a DENY refuses it.
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {once} from 'node:events'
import net from 'node:net'
import {test, type TestContext} from 'node:test'

import type {Policy} from '../../src/lib/config/types.js'
import {listenTcp, tcpSocket} from '../../src/lib/netns/native.js'
import {HboneEngine} from '../../src/lib/proxy/hbone/hbone-engine.js'
import {createTopology, type TopoPod} from '../helpers/netns.js'
import {httpGet, TRUST_DOMAIN, waitFor} from '../proxy/helpers.js'
import {expectCounts, type InpodMeshNodes, podFetch, startInpodMesh} from './fixtures.js'

const UP = randomBytes(4 * 1024 * 1024)
const DOWN = randomBytes(3 * 1024 * 1024)
const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex')
const PORT = 8090

async function readAll(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  await once(socket, 'end')
  return Buffer.concat(chunks)
}

/** An app in POD that reads until the client's FIN, then answers the sha256 of what it got and DOWN, and ends. */
async function digestApp(t: TestContext, pod: TopoPod): Promise<void> {
  const server = net.createServer({allowHalfOpen: true}, (socket) => {
    socket.on('error', () => {})
    void readAll(socket).then((got) => socket.end(Buffer.concat([Buffer.from(`${sha(got)}\n`), DOWN])))
  })
  t.after(() => server.close())
  await new Promise<void>((resolve) => server.listen({fd: listenTcp('0.0.0.0', PORT, {netns: pod.netnsPath})}, resolve))
}

/**
 * From inside FROM (an ordinary app) to HOST: the first megabyte, then DURING (the connection open), the rest
 * and FIN; the reply that only comes after that FIN must be the digest of UP, then DOWN.
 */
async function exchange(t: TestContext, from: TopoPod, host: string, during: () => Promise<void>): Promise<void> {
  const socket = new net.Socket({allowHalfOpen: true, fd: tcpSocket(4, {netns: from.netnsPath})})
  t.after(() => socket.destroy())
  socket.connect(PORT, host)
  await once(socket, 'connect')
  const reply = readAll(socket)
  socket.write(UP.subarray(0, 1024 * 1024))
  await during()
  socket.end(UP.subarray(1024 * 1024))
  const got = await reply
  assert.equal(got.subarray(0, 65).toString(), `${sha(UP)}\n`, 'the app got every byte, then the FIN')
  assert.equal(sha(got.subarray(65)), sha(DOWN), 'the reply after the FIN arrived intact')
}

/** While a connection is open: the pods' counts, and on the native engine a relay in the addon. */
function openWith(setup: InpodMeshNodes, dataPath: 'native' | 'node', counts: [TopoPod, number][]): () => Promise<void> {
  return async () => {
    await expectCounts(setup, 'the open connection counted', counts)
    assert.equal(HboneEngine.get().stats().relays > 0, dataPath === 'native', `relays in the addon: ${HboneEngine.get().stats().relays}`)
  }
}

for (const dataPath of ['native', 'node'] as const) test(`plain paths on the ${dataPath} engine: 15006, the local fast path (log, metrics, DENY) and passthrough`, async (t) => {
  const topo = await createTopology(t, {nodes: 2, podsPerNode: 2})
  const [n1p1, n1p2, n2p1, n2p2] = topo.pods as [TopoPod, TopoPod, TopoPod, TopoPod]
  // n2p2 stays outside the mesh: not redirected, not a workload.
  const setup = await startInpodMesh(t, topo, {dataPath, meshPods: [n1p1, n1p2, n2p1]})
  const [node1] = setup.nodes
  for (const pod of [n1p1, n2p2]) await digestApp(t, pod)

  // 15006: from outside the mesh into n1p1 (redirected to 15006, delivered from inside n1p1).
  await exchange(t, n2p2, n1p1.ip, openWith(setup, dataPath, [[n1p1, 1]]))
  await expectCounts(setup, '15006: the count back to 0', [[n1p1, 0]])

  // The local fast path: n1p2 → n1p1 on node 1, counted for both, then its access line and metrics.
  const linesBefore = node1!.logs.length
  await exchange(t, n1p2, n1p1.ip, openWith(setup, dataPath, [[n1p1, 1], [n1p2, 1]]))
  await expectCounts(setup, 'local fast path: the counts back to 0', [[n1p1, 0], [n1p2, 0]])
  const line = await waitFor('the local fast path\'s access line', () => node1!.logs.slice(linesBefore).find((entry) => entry.scope === 'access' && entry.message === 'connection complete' && entry['dst.addr'] === `${n1p1.ip}:${PORT}`))
  assert.equal(line['src.identity'], `spiffe://${TRUST_DOMAIN}/ns/default/sa/api`)
  assert.equal(line['dst.identity'], `spiffe://${TRUST_DOMAIN}/ns/default/sa/web`)
  assert.equal(line.bytes_sent, UP.length)
  assert.equal(line.bytes_recv, 65 + DOWN.length)
  assert.equal(line.error, undefined)
  const {body: metrics} = await httpGet(`http://${node1!.agent.addresses.metrics}/metrics`)
  const closed = metrics.split('\n').find((row) => row.startsWith('istio_tcp_connections_closed_total{') && row.includes(`destination_workload="${n1p1.name}"`) && row.includes(`source_workload="${n1p2.name}"`) && !row.includes('response_flags="DENY"'))
  assert.ok(closed && Number(closed.split(' ').at(-1)) >= 1, `a closed local connection in the metrics: ${closed}`)

  // A DENY on the source's service account refuses the local fast path (reset, and a DENY line).
  const deny: Policy = {action: 'DENY', from: ['sa:default/api'], name: 'deny-api', ports: [], services: [], sourceCidrs: []}
  await node1!.writeConfig(setup.config([deny]))
  await waitFor('the policy reaches node 1', () => node1!.agent.configDump().policies.length === 1)
  await assert.rejects(podFetch(n1p2, n1p1.ip, PORT), /ECONNRESET|socket hang up/)
  await waitFor('a DENY line', () => node1!.logs.some((entry) => entry['dst.addr'] === `${n1p1.ip}:${PORT}` && String(entry.error ?? '').includes('policy rejection')))
  await expectCounts(setup, 'a refused connection is not counted', [[n1p1, 0], [n1p2, 0]])
  await node1!.writeConfig(setup.config())
  await waitFor('the policy is gone', () => node1!.agent.configDump().policies.length === 0)

  // Passthrough: n1p1 → n2p2 (outside the mesh), from inside n1p1.
  await exchange(t, n1p1, n2p2.ip, openWith(setup, dataPath, [[n1p1, 1]]))
  await expectCounts(setup, 'passthrough: the count back to 0', [[n1p1, 0]])
  await waitFor('no relay left in the addon', () => HboneEngine.get().stats().relays === 0 || undefined)
})

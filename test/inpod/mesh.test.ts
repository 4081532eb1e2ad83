// Mesh traffic between redirected pods (root): two node agents in this process, each serving the pods
// of its node; workloads and policies come from a static configuration, workload certificates from a
// real CA (the controller route is exercised by two-nodes.test.ts). Pod → mesh pod on the other node
// goes as HBONE to <ip>:15008 with service-account identities; same node → local fast path; non-mesh →
// passthrough; `sa:` DENY policies refuse; a pod's 15008 is never an open relay. Each on both in-pod
// engines: the native one (the addon holds the pods' 15001/15008 and moves the bytes) and node:http2.
import assert from 'node:assert/strict'
import net from 'node:net'
import {test} from 'node:test'

import type {Policy} from '../../src/lib/config/types.js'
import {INPOD_SKIP_MARK, tcpSocket} from '../../src/lib/netns/native.js'
import {HboneError, HbonePool} from '../../src/lib/proxy/hbone/hbone-pool.js'
import {Credentials} from '../../src/lib/proxy/hbone/tls.js'
import {createKeyAndCsr} from '../../src/lib/pki/pki.js'
import {createTopology, type TopoPod} from '../helpers/netns.js'
import {httpGet, TRUST_DOMAIN, waitFor} from '../proxy/helpers.js'
import {podApp, podFetch, startInpodMesh} from './fixtures.js'

for (const dataPath of ['native', 'node'] as const) test(`pods on two node agents (${dataPath}): HBONE between nodes, local fast path, passthrough, sa: DENY, no open relay`, async (t) => {
  const topo = await createTopology(t, {nodes: 2, podsPerNode: 2})
  const [n1p1, n1p2, n2p1, n2p2] = topo.pods as [TopoPod, TopoPod, TopoPod, TopoPod]
  // n2p2 stays outside the mesh: not redirected, not a workload.
  const {config, issued, mesh, nodes} = await startInpodMesh(t, topo, {dataPath, meshPods: [n1p1, n1p2, n2p1]})

  await podApp(t, n2p1, 8080)
  await podApp(t, n1p1, 8081)
  await podApp(t, n2p2, 8082)

  // Node 1 → node 2 over HBONE: delivered from inside n2p1 (the app sees its own address).
  assert.equal(await podFetch(n1p1, n2p1.ip, 8080), `${n2p1.name} saw ${n2p1.ip}`)
  const hboneLine = await waitFor('the source access log line', () => nodes[0]!.logs.find((line) => line.scope === 'access' && line['dst.addr'] === `${n2p1.ip}:15008`))
  assert.equal(hboneLine['src.identity'], `spiffe://${TRUST_DOMAIN}/ns/default/sa/web`)
  assert.equal(hboneLine['dst.identity'], `spiffe://${TRUST_DOMAIN}/ns/default/sa/db`)
  assert.equal(hboneLine['dst.hbone_addr'], `${n2p1.ip}:8080`)
  const inboundLine = await waitFor('the destination access log line', () => nodes[1]!.logs.find((line) => line.scope === 'access' && line.direction === 'inbound'))
  assert.equal(inboundLine['src.identity'], `spiffe://${TRUST_DOMAIN}/ns/default/sa/web`)
  // One certificate per served service account, issued on the first workload of it.
  assert.deepEqual([...new Set(issued)].sort(), ['db', 'api', 'web'].map((sa) => `spiffe://${TRUST_DOMAIN}/ns/default/sa/${sa}`).sort())

  // Same node: the local fast path (no HBONE line for it), delivered inside n1p1, and accounted like
  // every other path: an access line with both identities and the bytes, and the TCP metrics.
  const linesBefore = nodes[0]!.logs.length
  assert.equal(await podFetch(n1p2, n1p1.ip, 8081), `${n1p1.name} saw ${n1p1.ip}`)
  assert.ok(!nodes[0]!.logs.slice(linesBefore).some((line) => line['dst.addr'] === `${n1p1.ip}:15008`))
  const localLine = await waitFor('the local fast path\'s access line', () => nodes[0]!.logs.slice(linesBefore).find((line) => line.scope === 'access' && line.message === 'connection complete' && line['dst.addr'] === `${n1p1.ip}:8081`))
  assert.equal(localLine['src.identity'], `spiffe://${TRUST_DOMAIN}/ns/default/sa/api`)
  assert.equal(localLine['dst.identity'], `spiffe://${TRUST_DOMAIN}/ns/default/sa/web`)
  assert.equal(localLine.direction, 'outbound')
  assert.equal(localLine.bytes_recv, `${n1p1.name} saw ${n1p1.ip}`.length, 'the reply, counted')
  const {body: metrics} = await httpGet(`http://${nodes[0]!.agent.addresses.metrics}/metrics`)
  const local = metrics.split('\n').find((line) => line.startsWith('istio_tcp_connections_closed_total{') && line.includes(`destination_workload="${n1p1.name}"`) && line.includes('connection_security_policy="unknown"'))
  assert.ok(local && Number(local.split(' ').at(-1)) >= 1, `a closed local connection in the metrics: ${local}`)

  // Not a mesh workload: plain passthrough, the app sees the pod's own source address.
  assert.equal(await podFetch(n1p1, n2p2.ip, 8082), `${n2p2.name} saw ${n1p1.ip}`)

  // The workloads show up in /config_dump with namespace, IPs and node.
  const dumped = nodes[0]!.agent.configDump().workloads.find((workload) => workload.name === n2p1.name)
  assert.deepEqual({ips: dumped?.ips, namespace: dumped?.namespace, node: dumped?.node}, {ips: [n2p1.ip], namespace: 'default', node: 'node2'})

  // A DENY policy on the source's service account refuses at the destination (401 → reset).
  const deny: Policy = {action: 'DENY', from: ['sa:default/web'], name: 'deny-web', ports: [], services: [], sourceCidrs: []}
  for (const node of nodes) await node.writeConfig(config([deny]))
  await waitFor('the policy reaches node 2', () => nodes[1]!.agent.configDump().policies.length === 1)
  await assert.rejects(podFetch(n1p1, n2p1.ip, 8080), /ECONNRESET|socket hang up|timed out/)
  assert.ok(await waitFor('a DENY line on node 2', () => nodes[1]!.logs.some((line) => String(line.error ?? '').includes('policy rejection'))))
  // n1p2 (sa api) is not denied.
  assert.equal(await podFetch(n1p2, n2p1.ip, 8080), `${n2p1.name} saw ${n2p1.ip}`)
  for (const node of nodes) await node.writeConfig(config())
  await waitFor('the policy is gone', () => nodes[1]!.agent.configDump().policies.length === 0)

  // Never an open relay: n2p1's 15008 refuses a target that is not one of n2p1's addresses.
  const {csrPem, keyPem} = await createKeyAndCsr('web')
  const spiffe = `spiffe://${TRUST_DOMAIN}/ns/default/sa/web`
  const credentials = new Credentials({ca: mesh.signer.ca.certPem, cert: (await mesh.signer.signCsr(csrPem, {spiffe, ttlSeconds: 600})).certPem, controller: '', key: keyPem, name: 'web', spiffe, version: 1})
  const pool = new HbonePool({
    connectSocket: (address) => new net.Socket({fd: tcpSocket(4, {mark: INPOD_SKIP_MARK, netns: n1p1.netnsPath})}).connect(address.port, address.host),
    credentials,
    isRevoked: () => false,
  })
  t.after(() => pool.destroy())
  const destination = {address: `${n2p1.ip}:15008`, spiffe: `spiffe://${TRUST_DOMAIN}/ns/default/sa/db`}
  await assert.rejects(pool.open(destination, `${n2p2.ip}:8082`, {}), (error: unknown) => error instanceof HboneError && error.status === 400)
  const opened = await pool.open(destination, `${n2p1.ip}:8080`, {})
  const reply: Buffer[] = []
  for await (const chunk of opened.stream) reply.push(chunk as Buffer)
  assert.equal(Buffer.concat(reply).toString(), `${n2p1.name} saw ${n2p1.ip}`)

  // The mesh path really dials <ip>:15008: with n2p1's listeners gone, a mesh connection to it fails.
  assert.equal((await nodes[1]!.cni.request({type: 'delete', uid: `uid-${n2p1.name}`})).error, undefined)
  await assert.rejects(podFetch(n1p1, n2p1.ip, 8080), /ECONNRESET|socket hang up|timed out/)
})

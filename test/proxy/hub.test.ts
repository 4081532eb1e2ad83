// Hubs in one process, real mutual TLS on 127.0.0.1: agent-b opens no listener (reached through the
// hub only), agent-a reaches its service through the hub with an inner HBONE session between the two
// agents' certificates; the hub reports identities, byte counts and Istio metrics, applies policies at
// agent level, and a second hub takes over when the first one stops.
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {test, type TestContext} from 'node:test'
import {writeFile} from 'node:fs/promises'
import path from 'node:path'

import {type ConfigSnapshot, emptySnapshot} from '../../src/lib/config/types.js'
import type {IdentityFile} from '../../src/lib/identity/file.js'
import {type Hub, runHub} from '../../src/lib/proxy/daemon/hub.js'
import {StaticConfigSource} from '../../src/lib/proxy/state/config-source.js'
import {createMesh, echoServer, httpGet, jsonLogSink, roundTrip, sha256, startAgent, tempDir, waitFor} from './helpers.js'

interface RunningHub {
  hub: Hub
  logs: Record<string, unknown>[]
}

async function startHub(t: TestContext, dir: string, identity: IdentityFile, snapshot: ConfigSnapshot): Promise<RunningHub> {
  const configFile = path.join(dir, `${identity.name}.config.json`)
  await writeFile(configFile, JSON.stringify(snapshot))
  const {destination, logs} = jsonLogSink()
  const hub = await runHub({
    admin: '127.0.0.1:0', configSource: new StaticConfigSource(configFile), drainTimeoutMs: 500, identity, keepaliveIntervalMs: 500, keepaliveTimeoutMs: 1000,
    listen: '127.0.0.1:0', logDestination: destination, logLevel: 'debug',
  })
  t.after(() => hub.shutdown('test over'))
  await hub.ready
  return {hub, logs}
}

/** a (inbound tcp/echo) → b (outbound, no HBONE address): identities with the hub role for the hubs. */
async function meshWithHubs(t: TestContext, hubNames: string[]) {
  const dir = await tempDir(t)
  const mesh = await createMesh()
  const [a, b] = await Promise.all([mesh.identity('agent-a'), mesh.identity('agent-b')])
  const hubs = await Promise.all(hubNames.map((name) => mesh.identity(name)))
  const echo = await echoServer(t)
  const snapshot = emptySnapshot()
  snapshot.agent['agent-b'] = {hbone: '', name: 'agent-b', spiffe: b.spiffe}
  snapshot.agent['agent-a'] = {hbone: '', name: 'agent-a', spiffe: a.spiffe}
  snapshot.outbound['tcp/echo@agent-b'] = {agent: 'agent-b', allow: [], service: 'tcp/echo', targets: [{host: '127.0.0.1', port: echo.port}]}
  snapshot.inbound['tcp/echo@agent-a'] = {agent: 'agent-a', listen: '127.0.0.1:0', service: 'tcp/echo'}
  for (const identity of [a, b]) snapshot.identity[identity.name] = {name: identity.name, roles: ['agent'], spiffe: identity.spiffe}
  for (const identity of hubs) snapshot.identity[identity.name] = {name: identity.name, roles: ['hub'], spiffe: identity.spiffe}
  return {a, b, dir, echo, hubs, mesh, snapshot}
}

const FAST_HUB_TIMING = {keepaliveIntervalMs: 500, keepaliveTimeoutMs: 1000}

test('an agent with no listener is reached through the hub; the inner session is between the two agents', async (t) => {
  const {a, b, dir, hubs, snapshot} = await meshWithHubs(t, ['hub-1'])
  const hub = await startHub(t, dir, hubs[0]!, snapshot)
  const hubAddress = hub.hub.addresses.listen
  const agentB = await startAgent(t, dir, b, snapshot, {admin: `unix:${path.join(dir, 'b.sock')}`, dataPath: 'native', hubs: [hubAddress], noListen: true, timing: FAST_HUB_TIMING})
  const agentA = await startAgent(t, dir, a, snapshot, {dataPath: 'native', hubs: [`hub-1@${hubAddress}`], noListen: false})
  await agentA.agent.ready
  assert.equal(agentB.agent.addresses.hbone, '', 'no HBONE listener')
  assert.equal(agentB.agent.addresses.metrics, undefined)
  assert.match(agentB.agent.addresses.admin!, /^unix:/)
  await waitFor('both agents attached', () => hub.hub.status().agents.filter((agent) => agent.standby > 0).length === 2)

  const listen = agentA.agent.addresses.inbound['tcp/echo@agent-a']!
  const data = randomBytes(3 * 1024 * 1024)
  const echoed = await roundTrip(listen, data)
  assert.equal(sha256(echoed), sha256(data))

  // The destination's peer is agent-a itself (end-to-end mutual TLS), at the address the hub saw.
  const inbound = await waitFor('b access log', () => agentB.logs.find((line) => line.message === 'connection complete' && line.direction === 'inbound'))
  assert.equal(inbound['src.identity'], a.spiffe)
  assert.match(String(inbound['src.addr']), /^127\.0\.0\.1:\d+$/)
  const outbound = await waitFor('a access log', () => agentA.logs.find((line) => line.message === 'connection complete' && line.direction === 'outbound'))
  assert.equal(outbound['dst.addr'], 'hub')
  assert.equal(outbound['dst.identity'], b.spiffe)

  // The hub saw identities and counts ciphertext, in Istio's terms; the relay (a pooled inner session)
  // stays open until its source lets it go.
  const metrics = await httpGet(`http://${hub.hub.addresses.admin}/metrics`)
  assert.match(metrics.body, /istio_tcp_connections_opened_total\{reporter="hub",source_workload="agent-a",.*destination_workload="agent-b",.*connection_security_policy="mutual_tls"\} 1/)
  const status = await httpGet(`http://${hub.hub.addresses.admin}/hub_status`)
  const dump = JSON.parse(status.body) as {agents: {name: string; relays: number; standby: number}[]; relays: number}
  assert.deepEqual(dump.agents.map((agent) => agent.name), ['agent-a', 'agent-b'])
  assert.equal(dump.relays, 1)
  // The agent's own dump shows the attachment with a measured round trip.
  const attachment = agentA.agent.configDump().hubs[0]!
  assert.equal(attachment.state, 'connected')
  assert.equal(attachment.hub, 'hub-1')
  assert.ok(typeof attachment.rttMs === 'number' && attachment.rttMs >= 0)
  assert.equal(attachment.streams, 1)

  await agentA.agent.shutdown('test: the source leaves')
  const relay = await waitFor('hub access log', () => hub.logs.find((line) => line.message === 'connection complete' && line.direction === 'relay'))
  assert.equal(relay['src.identity'], a.spiffe)
  assert.equal(relay['dst.workload'], 'agent-b')
  assert.ok(Number(relay.bytes_recv) > data.length && Number(relay.bytes_sent) > data.length, `the hub relayed the payload, encrypted (${relay.bytes_recv}/${relay.bytes_sent})`)
})

test('the hub applies policies at agent level and refuses what no service of the destination allows', async (t) => {
  const {a, b, dir, hubs, snapshot} = await meshWithHubs(t, ['hub-1'])
  snapshot.policy['no-a'] = {action: 'DENY', from: ['@agent-a'], name: 'no-a', ports: [], services: [], sourceCidrs: []}
  const hub = await startHub(t, dir, hubs[0]!, snapshot)
  const hubAddress = hub.hub.addresses.listen
  await startAgent(t, dir, b, snapshot, {admin: `unix:${path.join(dir, 'b.sock')}`, dataPath: 'native', hubs: [hubAddress], noListen: true})
  const agentA = await startAgent(t, dir, a, snapshot, {dataPath: 'native', hubs: [hubAddress]})
  await agentA.agent.ready
  await waitFor('b attached', () => hub.hub.status().agents.some((agent) => agent.name === 'agent-b' && agent.standby > 0))
  const listen = agentA.agent.addresses.inbound['tcp/echo@agent-a']!
  const echoed = await roundTrip(listen, Buffer.from('denied?')).catch(() => Buffer.alloc(0))
  assert.equal(echoed.length, 0)
  const refusal = await waitFor('a logs the refusal', () => agentA.logs.find((line) => line.message === 'connection complete' && typeof line.error === 'string'))
  assert.match(String(refusal.error), /hub-1.*401.*denied by policy "no-a"/)
  await waitFor('the hub counts a DENY', () => hub.hub.metrics.total('failed', {reporter: 'hub', responseFlags: 'DENY'}) >= 1)
})

test('with two hubs, the lowest round trip carries; killing it, new connections go through the other within seconds', async (t) => {
  const {a, b, dir, hubs, snapshot} = await meshWithHubs(t, ['hub-1', 'hub-2'])
  const [hub1, hub2] = [await startHub(t, dir, hubs[0]!, snapshot), await startHub(t, dir, hubs[1]!, snapshot)]
  const addresses = [hub1.hub.addresses.listen, hub2.hub.addresses.listen]
  await startAgent(t, dir, b, snapshot, {admin: `unix:${path.join(dir, 'b.sock')}`, dataPath: 'native', hubs: addresses, noListen: true, timing: FAST_HUB_TIMING})
  const agentA = await startAgent(t, dir, a, snapshot, {dataPath: 'native', hubs: addresses, timing: FAST_HUB_TIMING})
  await agentA.agent.ready
  for (const hub of [hub1, hub2]) await waitFor('b attached everywhere', () => hub.hub.status().agents.some((agent) => agent.name === 'agent-b' && agent.standby > 0))
  await waitFor('a attached to both', () => agentA.agent.configDump().hubs.every((hub) => hub.state === 'connected' && hub.rttMs !== undefined))
  const listen = agentA.agent.addresses.inbound['tcp/echo@agent-a']!
  assert.equal((await roundTrip(listen, Buffer.from('one'))).toString(), 'one')
  const carrier = [hub1, hub2].find((hub) => hub.hub.metrics.total('opened', {reporter: 'hub'}) === 1)!
  const other = carrier === hub1 ? hub2 : hub1
  const rtts = agentA.agent.configDump().hubs
  const preferred = rtts.reduce((best, hub) => (hub.rttMs! < best.rttMs! ? hub : best))
  assert.equal(preferred.hub, carrier === hub1 ? 'hub-1' : 'hub-2', 'the relay went through the lowest-RTT hub')

  await carrier.hub.shutdown('killed by the test')
  const started = Date.now()
  await waitFor('a new connection succeeds through the other hub', async () => (await roundTrip(listen, Buffer.from('two')).catch(() => Buffer.alloc(0))).toString() === 'two', 5000)
  assert.ok(Date.now() - started < 5000)
  assert.ok(other.hub.metrics.total('opened', {reporter: 'hub'}) >= 1)
})

// UDP tunnels in one process, real mutual TLS on 127.0.0.1: dig (a real client) asks dnsmasq (a real
// DNS server on 127.0.0.1, answering one name from its own table, no upstream) through
// `udp/dns`; flows end after their idle timeout; a flood of datagrams stays within the buffer bound
// (drops are counted, nothing grows); the framing reader survives any chunking.
import assert from 'node:assert/strict'
import {execFile, spawn} from 'node:child_process'
import {createSocket} from 'node:dgram'
import {randomBytes} from 'node:crypto'
import {test, type TestContext} from 'node:test'

import {emptySnapshot} from '../../src/lib/config/types.js'
import {DatagramReader, frameDatagram, UDP_LIMITS} from '../../src/lib/proxy/paths/tunnel-udp.js'
import {createMesh, deadPort, startAgent, tempDir, waitFor} from './helpers.js'

function dig(server: string, port: number, name: string): Promise<{code: number; stdout: string}> {
  return new Promise((resolve) => {
    execFile('dig', [`@${server}`, '-p', String(port), '+short', '+tries=1', '+time=3', name, 'A'], {encoding: 'utf8'}, (error, stdout) => {
      resolve({code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout: stdout.trim()})
    })
  })
}

/** dnsmasq on 127.0.0.1:PORT answering only NAME → ADDRESS (no upstream, no hosts file). */
async function dnsServer(t: TestContext, name: string, address: string): Promise<number> {
  const port = await deadPort()
  const child = spawn('dnsmasq', ['--keep-in-foreground', '--no-daemon', '--no-resolv', '--no-hosts', '--no-poll', '--listen-address=127.0.0.1', '--bind-interfaces',
    `--port=${port}`, `--address=/${name}/${address}`, '--pid-file=', '--user=root', '--log-facility=-'], {stdio: ['ignore', 'ignore', 'pipe']})
  t.after(() => {
    child.kill('SIGKILL')
  })
  await waitFor('dnsmasq answers', async () => (await dig('127.0.0.1', port, name)).stdout === address, 10_000)
  return port
}

async function udpMesh(t: TestContext, target: {host: string; port: number}, idleTimeout?: number) {
  const dir = await tempDir(t)
  const mesh = await createMesh()
  const [a, b] = await Promise.all([mesh.identity('agent-a'), mesh.identity('agent-b')])
  const snapshot = emptySnapshot()
  for (const identity of [a, b]) snapshot.identity[identity.name] = {name: identity.name, roles: [], spiffe: identity.spiffe}
  snapshot.outbound['udp/dns@agent-b'] = {agent: 'agent-b', allow: [], service: 'udp/dns', targets: [target]}
  snapshot.inbound['udp/dns@agent-a'] = {agent: 'agent-a', idleTimeout, listen: '127.0.0.1:0', service: 'udp/dns'}
  const exit = await startAgent(t, dir, b, snapshot, {dataPath: 'native'})
  snapshot.agent['agent-b'] = {hbone: exit.agent.addresses.hbone, name: 'agent-b', spiffe: b.spiffe}
  const entry = await startAgent(t, dir, a, snapshot, {dataPath: 'native'})
  await entry.agent.ready
  const listen = entry.agent.addresses.inbound['udp/dns@agent-a']!
  return {entry, exit, listen, port: Number(listen.slice(listen.lastIndexOf(':') + 1))}
}

test('dig gets its answer from a DNS server through a udp/ tunnel; the flow ends after its idle timeout', async (t) => {
  const dnsPort = await dnsServer(t, 'db.example.mesh', '10.77.0.9')
  const {entry, exit, port} = await udpMesh(t, {host: '127.0.0.1', port: dnsPort}, 1)
  for (let i = 0; i < 3; i++) assert.equal((await dig('127.0.0.1', port, 'db.example.mesh')).stdout, '10.77.0.9')
  const counters = () => entry.agent.configDump().inbound[0]!.udp!
  assert.ok(counters().datagramsIn >= 3 && counters().datagramsOut >= 3)
  await waitFor('the exit logs the flow with its bytes once it ended', () => exit.logs.find((line) => line.message === 'connection complete' && line['dst.service'] === 'udp/dns' && Number(line.bytes_recv) > 0), 8000)
  await waitFor('idle flows are gone', () => counters().flows === 0, 5000)
  await waitFor('the stream of the flow closed too', () => entry.agent.configDump().connections.length === 0, 5000)
})

test('a flood of datagrams stays within the buffer bound: drops are counted, nothing piles up', async (t) => {
  // A target that never answers: the datagrams go nowhere useful.
  const sink = createSocket('udp4')
  await new Promise<void>((resolve) => sink.bind(0, '127.0.0.1', resolve))
  t.after(() => sink.close())
  const {entry, port} = await udpMesh(t, {host: '127.0.0.1', port: sink.address().port})
  const counters = () => entry.agent.configDump().inbound[0]!.udp!
  const settled = async (what: string) => {
    let last = -1
    await waitFor(what, () => {
      const now = counters().datagramsIn
      const stable = now === last
      last = now
      return stable && now > 0
    }, 10_000)
    return counters()
  }

  // A burst on a new flow arrives before its stream is open: 16 datagrams wait, the rest are dropped.
  const client = createSocket('udp4')
  t.after(() => client.close())
  const payload = randomBytes(1200)
  for (let i = 0; i < 2000; i++) client.send(payload, port, '127.0.0.1')
  const burst = await settled('the burst was read')
  assert.equal(burst.flows, 1)
  assert.equal(burst.dropped, burst.datagramsIn - UDP_LIMITS.maxQueued, `only ${UDP_LIMITS.maxQueued} waited for the stream (${burst.datagramsIn} read)`)
  assert.ok(burst.peakBuffered <= UDP_LIMITS.maxQueuedBytes)

  // Then a flood on the open stream: each flow holds at most maxUnsent bytes, whatever arrives.
  for (let round = 0; round < 40; round++) {
    for (let i = 0; i < 500; i++) client.send(payload, port, '127.0.0.1')
    await new Promise((resolve) => setImmediate(resolve))
  }

  const flood = await settled('the flood was read')
  assert.ok(flood.datagramsIn > burst.datagramsIn + 1000, `the flood reached the listener (${flood.datagramsIn})`)
  assert.ok(flood.peakBuffered <= UDP_LIMITS.maxUnsent, `held at most ${UDP_LIMITS.maxUnsent} bytes per flow (peak ${flood.peakBuffered})`)
  assert.equal(flood.flows, 1)
})

test('the framing reader reassembles datagrams across any chunking and holds one partial frame at most', () => {
  const datagrams = [Buffer.alloc(0), randomBytes(1), randomBytes(1500), randomBytes(65_535), randomBytes(7)]
  const stream = Buffer.concat(datagrams.map((datagram) => frameDatagram(datagram)))
  for (const size of [1, 2, 3, 1000, stream.length]) {
    const reader = new DatagramReader()
    const out: Buffer[] = []
    for (let offset = 0; offset < stream.length; offset += size) out.push(...reader.push(stream.subarray(offset, offset + size)))
    assert.deepEqual(out.map((buffer) => buffer.toString('hex')), datagrams.map((buffer) => buffer.toString('hex')), `chunks of ${size}`)
  }
})

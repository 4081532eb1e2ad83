// Hostile peers against a hub process (`ztctl hub run`, bin/run.js over dist/) and against an agent's
// proxy port, with the hostile client of test/helpers/hostile-h2.ts and raw sockets. While each attack
// runs, agent-a reaches agent-b (no listener: through the hub only) every 200 ms and every round trip
// must come back; after all of them a new agent reaches agent-b through the hub (a new session, a new
// relay on a fresh standby stream). Bounds stated and asserted, with margin for a busy 2-core machine:
// - peers without a certificate: 1,000 TLS handshakes with no client certificate, 1,000 connections of
//   random bytes (half of them then silent), 300 connections that send nothing: each closed by the hub
//   (the silent ones by its 10 s handshake deadline); peak fds ≤ baseline + 400, ≤ baseline + 10 again within 20 s;
// - a valid certificate: 2,000 malformed-frame connections (fds as above); a 10,000-stream rapid reset of
//   relay CONNECTs to agent-b (GOAWAY ENHANCE_YOUR_CALM, peak RSS ≤ baseline + 150 MB); 150 standby
//   streams on one session (16 parked, the rest refused 429) and standby streams in agent-b's name
//   (refused 401: never parked);
// - the proxy port: 1,200 clients that never finish their handshake hold at most 1,024 handshakes (the
//   rest are closed at once) and all are closed by the 10 s deadline; 1,000 connections of garbage.
import assert from 'node:assert/strict'
import {type ChildProcess, spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {readFile, writeFile} from 'node:fs/promises'
import {connect, type Socket} from 'node:net'
import path from 'node:path'
import {test, type TestContext} from 'node:test'
import {connect as tlsConnect} from 'node:tls'

import {type ConfigSnapshot, emptySnapshot} from '../../src/lib/config/types.js'
import type {IdentityFile} from '../../src/lib/identity/file.js'
import {MAX_HANDSHAKES} from '../../src/lib/proxy/paths/proxy-entry.js'
import {RUN_JS} from '../helpers/controller.js'
import {footprint, probeLoop, sampleFootprint, waitForFootprint} from '../helpers/footprint.js'
import {FLAG, FRAME, h2Connect, headersFrame, malformedFlood, parseFrames, rapidResetFlood} from '../helpers/hostile-h2.js'
import {createMesh, echoServer, httpGet, roundTrip, startAgent, tempDir, waitFor} from './helpers.js'

interface HubProcess {
  admin: string
  child: ChildProcess
  pid: number
  port: number
  output: () => string
}

async function spawnHub(t: TestContext, dir: string, identity: IdentityFile, snapshot: ConfigSnapshot): Promise<HubProcess> {
  const files = {config: path.join(dir, 'hub.config.json'), identity: path.join(dir, 'hub.json'), ready: path.join(dir, 'hub.ready.json')}
  await writeFile(files.identity, JSON.stringify(identity), {mode: 0o600})
  await writeFile(files.config, JSON.stringify(snapshot))
  const child = spawn(process.execPath, [RUN_JS, 'hub', 'run', '-i', files.identity, '--config', files.config, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0',
    '--ready-file', files.ready, '--log-level', 'error'], {stdio: ['ignore', 'pipe', 'pipe']})
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk))
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk))
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const ready = await waitFor('the hub is ready', async () => {
    if (child.exitCode !== null) throw new Error(`the hub exited ${child.exitCode}: ${output}`)
    return readFile(files.ready, 'utf8').then((text) => JSON.parse(text) as {addresses: {admin: string; listen: string}}, () => undefined)
  }, 20_000)
  const {admin, listen} = ready.addresses
  return {admin, child, output: () => output, pid: child.pid!, port: Number(listen.slice(listen.lastIndexOf(':') + 1))}
}

/** A round trip from LISTEN every INTERVAL until stopped. */
const probe = (listen: string, intervalMs = 200) => probeLoop(async () => {
  const data = randomBytes(2048)
  const echoed = await roundTrip(listen, data).catch((error: Error) => Buffer.from(error.message))
  return echoed.equals(data) ? undefined : echoed.subarray(0, 100).toString('latin1') || '(nothing came back)'
}, intervalMs)

/**
 * COUNT connections in waves of CONCURRENCY, each made by OPEN with the PAYLOAD it sends (hex, for the
 * report) and resolved once the other side closed it; what was still open after 30 s (then destroyed).
 */
async function waves(count: number, concurrency: number, open: (index: number) => {payload?: Buffer; socket: Socket}): Promise<{notClosed: string[]}> {
  let next = 0
  const notClosed: string[] = []
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++
      await new Promise<void>((resolve) => {
        const {payload, socket} = open(index)
        const started = Date.now()
        let closed = false
        const timer = setTimeout(() => {
          if (!closed) notClosed.push(`#${index} after ${Date.now() - started} ms, sent ${payload?.subarray(0, 48).toString('hex') ?? 'nothing'} (${payload?.length ?? 0} bytes)`)
          socket.destroy()
          resolve()
        }, 30_000)
        socket.on('error', () => {})
        socket.resume() // read, so the server's FIN is seen (a paused socket never learns it was closed)
        socket.once('close', () => {
          closed = true
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  await Promise.all(Array.from({length: concurrency}, worker))
  return {notClosed}
}

/** A client that sends random bytes (half of them then FIN, half stay open) and waits to be closed. */
function garbageClient(port: number, index: number): {payload: Buffer; socket: Socket} {
  const payload = randomBytes(1 + Math.floor(Math.random() * 1500))
  const socket = connect({host: '127.0.0.1', port})
  socket.once('connect', () => (index % 2 ? socket.end(payload) : socket.write(payload)))
  return {payload, socket}
}

/** Hold COUNT TCP connections to PORT that send nothing; resolves once all are connected. */
async function silentClients(t: TestContext, port: number, count: number): Promise<{closed: () => number; sockets: Socket[]}> {
  let closed = 0
  const sockets = await Promise.all(Array.from({length: count}, () => new Promise<Socket>((resolve) => {
    const socket = connect({host: '127.0.0.1', port})
    socket.on('error', () => {})
    socket.resume()
    socket.once('close', () => closed++)
    socket.once('connect', () => resolve(socket))
    socket.once('error', () => resolve(socket))
  })))
  t.after(() => {
    for (const socket of sockets) socket.destroy()
  })
  return {closed: () => closed, sockets}
}

// Several floods in a row, some waiting for deadlines: minutes on a busy machine.
test('hostile peers cannot exhaust a hub or an agent\'s proxy port; relays and tunnels are served throughout', {timeout: 600_000}, async (t) => {
  const dir = await tempDir(t)
  const mesh = await createMesh()
  const [a, b, c, hubIdentity, attacker] = await Promise.all(['agent-a', 'agent-b', 'agent-c', 'hub-1', 'attacker'].map((name) => mesh.identity(name)))
  const echo = await echoServer(t)
  const snapshot = emptySnapshot()
  for (const identity of [a, b, c, attacker]) snapshot.identity[identity.name] = {name: identity.name, roles: ['agent'], spiffe: identity.spiffe}
  snapshot.identity['hub-1'] = {name: 'hub-1', roles: ['hub'], spiffe: hubIdentity!.spiffe}
  for (const identity of [a, b, c]) snapshot.agent[identity.name] = {hbone: '', name: identity.name, spiffe: identity.spiffe}
  snapshot.outbound['tcp/echo@agent-b'] = {agent: 'agent-b', allow: [], service: 'tcp/echo', targets: [{host: '127.0.0.1', port: echo.port}]}
  snapshot.inbound['tcp/echo@agent-a'] = {agent: 'agent-a', listen: '127.0.0.1:0', service: 'tcp/echo'}
  snapshot.inbound['tcp/echo@agent-c'] = {agent: 'agent-c', listen: '127.0.0.1:0', service: 'tcp/echo'}
  snapshot.proxy['agent-a'] = {agent: 'agent-a', listen: '127.0.0.1:0', users: []}
  snapshot.exit['agent-b'] = {agent: 'agent-b', allow: [], exclusions: [], targets: ['127.0.0.1/32']}

  const hub = await spawnHub(t, dir, hubIdentity!, snapshot)
  const hubAddress = `127.0.0.1:${hub.port}`
  const timing = {keepaliveIntervalMs: 1000, keepaliveTimeoutMs: 5000}
  await startAgent(t, dir, b!, snapshot, {admin: `unix:${path.join(dir, 'b.sock')}`, dataPath: 'native', hubs: [hubAddress], logLevel: 'error', noListen: true, timing})
  const agentA = await startAgent(t, dir, a!, snapshot, {admin: `unix:${path.join(dir, 'a.sock')}`, dataPath: 'native', hubs: [hubAddress], logLevel: 'error', noListen: true, timing})
  await agentA.agent.ready
  await waitFor('both agents parked standby streams', async () => {
    const status = JSON.parse((await httpGet(`http://${hub.admin}/hub_status`)).body) as {agents: {name: string; standby: number}[]}
    return status.agents.filter((agent) => agent.standby > 0).length === 2
  }, 10_000)
  const listen = agentA.agent.addresses.inbound['tcp/echo@agent-a']!
  await probe(listen, 0).stop()
  const baseline = await footprint(hub.pid)
  const credentials = {ca: attacker!.ca, cert: attacker!.cert, key: attacker!.key}

  /** Run ATTACK while probing; the hub's peak footprint and how the probe fared. */
  const during = async <T>(attack: () => Promise<T>) => {
    const sampler = sampleFootprint(hub.pid)
    const running = probe(listen)
    const result = await attack()
    const peak = await sampler.stop()
    const probed = await running.stop()
    assert.deepEqual(probed.failures, [], 'every round trip through the hub came back during the attack')
    assert.ok(probed.answered >= 2, `round trips during the attack: ${probed.answered}`)
    return {peak, probed, result}
  }

  await t.test('peers without a certificate: no handshake, garbage, silence — each closed, fds bounded', async () => {
    const {peak, result} = await during(async () => {
      const silent = await silentClients(t, hub.port, 300)
      const noCertificate = await waves(1000, 32, () => ({socket: tlsConnect({ALPNProtocols: ['h2'], ca: attacker!.ca, host: '127.0.0.1', port: hub.port, rejectUnauthorized: false})}))
      const garbage = await waves(1000, 32, (index) => garbageClient(hub.port, index))
      await waitFor('the hub closed the silent connections (handshake deadline)', () => silent.closed() === 300, 20_000)
      return {garbage, noCertificate}
    })
    const after = await waitForFootprint(hub.pid, (now) => now.fds <= baseline.fds + 10, 20_000)
    t.diagnostic(`hub: 1,000 without a certificate and 1,000 of garbage, all closed by the hub; 300 silent closed by its deadline; fds ${baseline.fds} → peak ${peak.fds} → ${after.fds}; RSS ${baseline.rssMb} → peak ${peak.rssMb} MB`)
    assert.deepEqual(result.noCertificate.notClosed, [], 'the hub closed every handshake without a client certificate')
    assert.deepEqual(result.garbage.notClosed, [], 'the hub closed every connection of garbage')
    assert.ok(peak.fds <= baseline.fds + 400, `peak fds ${peak.fds} within baseline ${baseline.fds} + 400`)
  })

  await t.test('a valid certificate: 2,000 malformed-frame connections, fds bounded', async () => {
    const {peak, result} = await during(() => malformedFlood(2000, {...credentials, concurrency: 32, port: hub.port}))
    const after = await waitForFootprint(hub.pid, (now) => now.fds <= baseline.fds + 10, 20_000)
    t.diagnostic(`hub: malformed flood ${result.connected} connections in ${result.ms} ms; fds peak ${peak.fds} → ${after.fds}`)
    assert.equal(result.failed, 0)
    assert.ok(peak.fds <= baseline.fds + 400, `peak fds ${peak.fds} within baseline ${baseline.fds} + 400`)
  })

  await t.test('a valid certificate: a 10,000-stream rapid reset of relay CONNECTs ends in GOAWAY, RSS bounded', async () => {
    const relay = (streamId: number) => headersFrame(streamId, [[':method', 'CONNECT'], [':authority', 'agent-b:15008'], ['ztctl-hub', 'relay']])
    const {peak, result} = await during(() => rapidResetFlood(10_000, relay, {...credentials, concurrency: 4, port: hub.port}))
    t.diagnostic(`hub: rapid reset ${result.streams} streams on ${result.connected} connections in ${result.ms} ms, closed ${JSON.stringify(result.closedBy)}; RSS ${baseline.rssMb} → peak ${peak.rssMb} MB`)
    assert.ok(result.streams >= 10_000, `${result.streams} streams processed`)
    assert.ok((result.closedBy[11] ?? 0) >= 1, 'the hub ended flooding sessions with GOAWAY(ENHANCE_YOUR_CALM)')
    assert.ok(peak.rssMb <= baseline.rssMb + 150, `peak RSS ${peak.rssMb} MB within baseline ${baseline.rssMb} + 150`)
  })

  await t.test('standby streams: 16 parked per session, the rest refused 429; none in another agent\'s name', async () => {
    const peer = await h2Connect({...credentials, port: hub.port})
    t.after(() => peer.destroy())
    const accept = (streamId: number, name: string) => headersFrame(streamId, [[':method', 'CONNECT'], [':authority', `${name}:15008`], ['ztctl-hub', 'accept']])
    // 170 streams: within the session's 200 (HBONE_BOUNDS); 16 are held, the rest answered at once.
    const streams = Array.from({length: 150}, (_, index) => 1 + 2 * index)
    const foreign = Array.from({length: 20}, (_, index) => 301 + 2 * index)
    peer.write(Buffer.concat([...streams.map((id) => accept(id, 'attacker')), ...foreign.map((id) => accept(id, 'agent-b'))]))
    const answered = await waitFor('every refusal answered', () => {
      const headers = parseFrames(peer.received()).filter((frame) => frame.type === FRAME.HEADERS && (frame.flags & FLAG.END_STREAM) !== 0)
      return headers.length >= 150 - 16 + 20 ? headers : undefined
    }, 10_000)
    const refused = new Set(answered.map((frame) => frame.streamId))
    assert.equal(streams.filter((id) => !refused.has(id)).length, 16, 'exactly 16 standby streams are held')
    assert.ok(foreign.every((id) => refused.has(id)), 'standby streams in another agent\'s name are refused')
    const status = JSON.parse((await httpGet(`http://${hub.admin}/hub_status`)).body) as {agents: {name: string; standby: number}[]}
    assert.deepEqual(status.agents.filter((agent) => agent.name === 'attacker').map((agent) => agent.standby), [16])
    // agent-b keeps 4 standby streams per hub (docs/hbone.md §10): none of the attacker's joined them.
    assert.ok(status.agents.filter((agent) => agent.name === 'agent-b').every((agent) => agent.standby <= 4), JSON.stringify(status.agents))
    peer.destroy()
    const probed = await probe(listen, 0).stop()
    assert.deepEqual(probed.failures, [])
  })

  await t.test('a new agent still reaches agent-b through the hub: a new session and a new relay', async () => {
    const agentC = await startAgent(t, dir, c!, snapshot, {admin: `unix:${path.join(dir, 'c.sock')}`, dataPath: 'native', hubs: [hubAddress], logLevel: 'error', noListen: true, timing})
    await agentC.agent.ready
    const data = randomBytes(256 * 1024)
    const echoed = await waitFor('agent-c reaches agent-b', () => roundTrip(agentC.agent.addresses.inbound['tcp/echo@agent-c']!, data).then((out) => out.equals(data), () => false), 15_000)
    assert.equal(echoed, true)
    assert.equal(hub.child.exitCode, null, 'the hub is still running')
  })

  await t.test('the proxy port: garbage closed; clients that never finish hold at most 1,024 handshakes, each ended by the deadline', async () => {
    const proxy = agentA.agent.configDump().proxy!.address!
    const port = Number(proxy.slice(proxy.lastIndexOf(':') + 1))
    const pid = process.pid // the agents run in this test process
    const before = await footprint(pid)
    const garbage = await waves(1000, 32, (index) => garbageClient(port, index))
    assert.deepEqual(garbage.notClosed, [], 'the agent closed every connection of garbage')
    const extra = 176
    const silent = await silentClients(t, port, MAX_HANDSHAKES + extra)
    // Past the bound a connection is closed at once: exactly MAX_HANDSHAKES stay, until the deadline.
    await waitFor('connections past the bound closed at once', () => silent.closed() >= extra, 5000)
    await new Promise((resolve) => setTimeout(resolve, 1000))
    assert.equal(silent.closed(), extra, `${MAX_HANDSHAKES + extra - silent.closed()} handshakes held`)
    await waitFor('every silent client was closed by the 10 s deadline', () => silent.closed() === MAX_HANDSHAKES + extra, 20_000)
    const after = await waitForFootprint(pid, (now) => now.fds <= before.fds + 10, 20_000)
    t.diagnostic(`proxy: 1,000 of garbage closed; ${MAX_HANDSHAKES} silent handshakes held, ${extra} closed at once; fds ${before.fds} → ${after.fds}`)
    assert.equal((await roundTrip(listen, Buffer.from('still served'))).toString(), 'still served')
  })

  assert.equal(hub.child.exitCode, null, `the hub survived: ${hub.output().slice(-2000)}`)
})

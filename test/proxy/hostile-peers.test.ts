// A hostile peer with a valid mesh certificate against an agent process's HBONE port, on each data path
// (the C engine and node:http2), with the hostile client of test/helpers/hostile-h2.ts (raw TLS, hand-built
// frames). While each flood runs a legitimate peer opens a tunnel through the agent every 200 ms: every one
// must get 200 and its bytes echoed. Bounds stated and asserted (with margin for a busy 2-core machine):
// - 2,000 malformed-frame connections: peak open fds ≤ baseline + 400; ≤ baseline + 10 again within 20 s
//   (the C engine closes the session at the bad frame; node:http2 never does, so the shared guard finds a
//   session silent before its first stream within ~3 s);
// - a 10,000-stream rapid reset (CONNECT to a served target + RST_STREAM): sessions end with GOAWAY
//   ENHANCE_YOUR_CALM after ~200 resets; the agent dials the flood's target for fewer than 1 in 20 of the
//   streams (a reset stream is never dialled); peak RSS ≤ baseline + 150 MB.
import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {type AddressInfo, createServer, type Socket} from 'node:net'
import path from 'node:path'
import {test, type TestContext} from 'node:test'

import {spawnAgentProcess} from '../helpers/agent-process.js'
import {footprint, probeLoop, sampleFootprint, waitForFootprint} from '../helpers/footprint.js'
import {hboneConnect} from '../helpers/hbone-client.js'
import {connectRequest, malformedFlood, rapidResetFlood} from '../helpers/hostile-h2.js'
import {createMesh, echoServer, tempDir, tunnelConfig} from './helpers.js'

/** A TCP server that counts the connections it accepts (how often the agent dialled it) and closes them. */
async function countingTarget(t: TestContext): Promise<{accepted: () => number; port: number}> {
  let accepted = 0
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    accepted++
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => {
    server.close()
    for (const socket of sockets) socket.destroy()
  })
  return {accepted: () => accepted, port: (server.address() as AddressInfo).port}
}

for (const dataPath of ['native', 'node'] as const) {
  test(`hostile peers with a valid certificate cannot exhaust an agent (${dataPath} data path)`, async (t) => {
    const dir = await tempDir(t)
    const mesh = await createMesh()
    const [agentB, attacker, friend] = [await mesh.identity('agent-b'), await mesh.identity('attacker'), await mesh.identity('friend')]
    const echo = await echoServer(t)
    const floodTarget = await countingTarget(t)
    const config = tunnelConfig({client: friend, server: agentB, serverHbone: '127.0.0.1:1', targets: [{host: '127.0.0.1', port: echo.port}]})
    config.outbound['tcp/flood@agent-b'] = {agent: 'agent-b', allow: [], service: 'tcp/flood', targets: [{host: '127.0.0.1', port: floodTarget.port}]}
    config.identity.attacker = {name: 'attacker', roles: [], spiffe: attacker.spiffe}
    const files = {config: path.join(dir, 'config.json'), identity: path.join(dir, 'agent-b.json'), ready: path.join(dir, 'agent-b.ready.json')}
    await writeFile(files.identity, JSON.stringify(agentB), {mode: 0o600})
    await writeFile(files.config, JSON.stringify(config))
    const agent = await spawnAgentProcess(t, {args: ['--config', files.config, '--data-path', dataPath, '--log-level', 'error'], identityFile: files.identity, readyFile: files.ready})
    const hbone = agent.ready.addresses.hbone
    const port = Number(hbone.slice(hbone.lastIndexOf(':') + 1))
    const pid = agent.child.pid!
    const credentials = {ca: attacker.ca, cert: attacker.cert, key: attacker.key}

    /** A tunnel through the agent every INTERVAL (a new HBONE connection each time) until stopped. */
    const probeTunnels = (intervalMs = 200) => probeLoop(async () => {
      const attempt = await hboneConnect(hbone, {ca: friend.ca, cert: friend.cert, key: friend.key}, `127.0.0.1:${echo.port}`)
      const echoed = attempt.status === 200
        ? await new Promise<string>((resolve) => {
          attempt.stream.once('data', (chunk: Buffer) => resolve(chunk.toString()))
          attempt.stream.write('ping')
          setTimeout(() => resolve('(no echo within 5 s)'), 5000).unref()
        })
        : `status ${attempt.status}`
      attempt.session.destroy()
      return echoed === 'ping' ? undefined : echoed
    }, intervalMs)

    await probeTunnels(0).stop()
    const baseline = await footprint(pid)

    await t.test('2,000 malformed-frame connections: fds bounded, tunnels served throughout', async () => {
      const sampler = sampleFootprint(pid)
      const probe = probeTunnels()
      const flood = await malformedFlood(2000, {...credentials, concurrency: 32, port})
      const peak = await sampler.stop()
      const probed = await probe.stop()
      const after = await waitForFootprint(pid, (now) => now.fds <= baseline.fds + 10, 20_000)
      t.diagnostic(`${dataPath}: malformed flood ${flood.connected} connections in ${flood.ms} ms; fds ${baseline.fds} → peak ${peak.fds} → ${after.fds}; RSS ${baseline.rssMb} → peak ${peak.rssMb} MB; tunnels ${probed.answered} served`)
      assert.equal(flood.failed, 0)
      assert.ok(peak.fds <= baseline.fds + 400, `peak fds ${peak.fds} within baseline ${baseline.fds} + 400`)
      assert.deepEqual(probed.failures, [])
      assert.ok(probed.answered >= 3, `tunnels served during the flood: ${probed.answered}`)
    })

    await t.test('a 10,000-stream rapid reset: sessions ended, no dial per reset stream, RSS bounded, tunnels served throughout', async () => {
      const before = await footprint(pid)
      const dialsBefore = floodTarget.accepted()
      const sampler = sampleFootprint(pid)
      const probe = probeTunnels()
      const flood = await rapidResetFlood(10_000, (streamId) => connectRequest(streamId, `127.0.0.1:${floodTarget.port}`), {...credentials, concurrency: 4, port})
      const peak = await sampler.stop()
      const probed = await probe.stop()
      const dials = floodTarget.accepted() - dialsBefore
      t.diagnostic(`${dataPath}: rapid reset ${flood.streams} streams on ${flood.connected} connections in ${flood.ms} ms, closed by the agent ${JSON.stringify(flood.closedBy)} (GOAWAY code: count); target dialled ${dials} times; RSS ${before.rssMb} → peak ${peak.rssMb} MB; fds peak ${peak.fds}; tunnels ${probed.answered} served`)
      assert.ok(flood.streams >= 10_000, `${flood.streams} streams processed`)
      assert.ok((flood.closedBy[11] ?? 0) >= 1, 'the agent ended flooding sessions with GOAWAY(ENHANCE_YOUR_CALM)')
      assert.ok(dials < flood.streams / 20, `the target was dialled ${dials} times for ${flood.streams} reset streams`)
      assert.ok(peak.rssMb <= baseline.rssMb + 150, `peak RSS ${peak.rssMb} MB within baseline ${baseline.rssMb} + 150`)
      assert.deepEqual(probed.failures, [])
    })
  })
}

// Unauthenticated attacks on the controller's TLS port, by a hostile client written for the test (raw TLS,
// hand-built HTTP/2 frames: test/helpers/hostile-h2.ts) against a real controller process limited to 1024
// file descriptors, as on many hosts. While each flood runs, a legitimate client asks GET /v1/version on a
// fresh connection every 200 ms: every one must be answered. The bounds stated (and asserted with margin for
// a busy 2-core machine):
// - 2,000 malformed-frame connections: peak open fds ≤ baseline + 400 (idle sessions are capped at 128,
//   dead ones found by an unanswered PING within ~3 s), back to ≤ baseline + 10 within 15 s;
// - 10,000-stream rapid reset: sessions end after ~100 resets each; peak RSS ≤ baseline + 200 MB, and 10 s
//   after the flood RSS ≤ baseline + 120 MB, fds ≤ baseline + 10.
import assert from 'node:assert/strict'
import {test} from 'node:test'

import {ControllerClient} from '../../src/lib/client/controller-client.js'
import {readIdentityFile} from '../../src/lib/identity/file.js'
import {startTestController, type TestController} from '../helpers/controller.js'
import {footprint, sampleFootprint, waitForFootprint} from '../helpers/footprint.js'
import {h2Connect, malformedFlood, parseFrames, postRequestHeaders, rapidResetFlood} from '../helpers/hostile-h2.js'

const NOFILE = 1024

interface ProbeReport {
  answered: number
  failures: string[]
  slowestMs: number
}

/** GET /v1/version every INTERVAL on a new connection (as a CLI does) until stopped. */
function probeController(ctl: TestController, intervalMs = 200): {stop(): Promise<ProbeReport>} {
  const report: ProbeReport = {answered: 0, failures: [], slowestMs: 0}
  let running = true
  const loop = (async () => {
    const identity = await readIdentityFile(ctl.adminIdentityPath)
    while (running) {
      const started = Date.now()
      const client = ControllerClient.fromIdentity({...identity, controller: ctl.url}, 10_000)
      try {
        const version = await client.request<{trustDomain: string}>('GET', '/v1/version')
        assert.equal(version.trustDomain, 'cluster.local')
        report.answered++
        report.slowestMs = Math.max(report.slowestMs, Date.now() - started)
      } catch (error) {
        report.failures.push(`${(error as Error).message} after ${Date.now() - started} ms`)
      } finally {
        client.close()
      }

      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
  })()
  return {
    async stop() {
      running = false
      await loop
      return report
    },
  }
}

test('hostile unauthenticated clients cannot exhaust the controller', async (t) => {
  const ctl = await startTestController(t, {nofile: NOFILE})
  const port = ctl.port
  // Warm up the paths the probe uses, then take the baseline.
  await probeController(ctl, 0).stop()
  const baseline = await footprint(ctl.pid)

  await t.test('a malformed frame ends the session, and the server closes the connection', async () => {
    const peer = await h2Connect({port})
    peer.write(Buffer.from([0, 0, 7, 0, 0, 0, 0, 0, 0, ...Buffer.from('garbage')])) // DATA on stream 0
    assert.equal(await peer.closed(10_000), true, 'the controller closed the connection')
    const goaway = parseFrames(peer.received()).find((frame) => frame.type === 7)
    assert.ok(goaway, 'a GOAWAY came first')
    assert.equal(goaway.payload.readUInt32BE(4), 1, 'PROTOCOL_ERROR')
    peer.destroy()
  })

  await t.test('2,000 malformed-frame connections: fds stay bounded and the controller answers throughout', async () => {
    const sampler = sampleFootprint(ctl.pid)
    const probe = probeController(ctl)
    const flood = await malformedFlood(2000, {concurrency: 32, port})
    const peak = await sampler.stop()
    const probed = await probe.stop()
    const after = await waitForFootprint(ctl.pid, (now) => now.fds <= baseline.fds + 10, 15_000)
    t.diagnostic(`malformed flood: ${flood.connected} connections in ${flood.ms} ms (${flood.failed} failed); fds ${baseline.fds} → peak ${peak.fds} → ${after.fds}; RSS ${baseline.rssMb} → peak ${peak.rssMb} → ${after.rssMb} MB; probes ${probed.answered} answered, slowest ${probed.slowestMs} ms`)
    assert.equal(flood.failed, 0, 'every hostile connection got through the handshake (the controller never ran out of fds)')
    assert.ok(peak.fds <= baseline.fds + 400, `peak fds ${peak.fds} within baseline ${baseline.fds} + 400`)
    assert.deepEqual(probed.failures, [], 'every probe was answered')
    assert.ok(probed.answered >= 3, `the probe ran (${probed.answered})`)
  })

  await t.test('a 10,000-stream rapid reset: RSS and fds bounded, the controller answers throughout', async () => {
    const before = await footprint(ctl.pid)
    const sampler = sampleFootprint(ctl.pid)
    const probe = probeController(ctl)
    const flood = await rapidResetFlood(10_000, (streamId) => postRequestHeaders(streamId, '/v1/enroll'), {concurrency: 4, port})
    const peak = await sampler.stop()
    const probed = await probe.stop()
    await new Promise((resolve) => setTimeout(resolve, 10_000))
    const after = await waitForFootprint(ctl.pid, (now) => now.fds <= baseline.fds + 10, 15_000)
    t.diagnostic(`rapid reset: ${flood.streams} streams on ${flood.connected} connections in ${flood.ms} ms, closed by the server: ${JSON.stringify(flood.closedBy)} (GOAWAY code: count); RSS ${before.rssMb} → peak ${peak.rssMb} → ${after.rssMb} MB; fds ${before.fds} → peak ${peak.fds} → ${after.fds}; probes ${probed.answered} answered, slowest ${probed.slowestMs} ms`)
    assert.ok(flood.streams >= 10_000, `${flood.streams} streams processed`)
    assert.ok((flood.closedBy[11] ?? 0) >= 1, 'the controller ended flooding sessions with GOAWAY(ENHANCE_YOUR_CALM)')
    assert.ok(peak.rssMb <= baseline.rssMb + 200, `peak RSS ${peak.rssMb} MB within baseline ${baseline.rssMb} + 200`)
    assert.ok(after.rssMb <= baseline.rssMb + 120, `RSS after ${after.rssMb} MB within baseline ${baseline.rssMb} + 120`)
    assert.deepEqual(probed.failures, [], 'every probe was answered')
  })
}
)

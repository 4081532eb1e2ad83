// App streams against garbage, on a real agent of each data path: an admitted identity that sends bytes
// that are no frames, a frame too long for its type, frames of the wrong direction in a running session,
// or nothing at all gets an ERROR (or its process stopped) and the stream ended; one that stops reading
// while its program floods costs the agent no memory — and the agent goes on serving. The client side is a
// raw HBONE stream (the pool, alice's certificate), not the CLI.
import assert from 'node:assert/strict'
import type {ClientHttp2Stream} from 'node:http2'
import {test} from 'node:test'

import {readError, readExit} from '../../src/lib/apps/messages.js'
import {encodeFrame, type Frame, FrameReader, FrameType} from '../../src/lib/apps/wire.js'
import {readIdentityFile} from '../../src/lib/identity/file.js'
import {HbonePool} from '../../src/lib/proxy/hbone/hbone-pool.js'
import {Credentials} from '../../src/lib/proxy/hbone/tls.js'
import {appAuthority} from '../../src/lib/proxy/state/apps.js'
import {footprint, sampleFootprint} from '../helpers/footprint.js'
import {waitFor} from '../proxy/helpers.js'
import {type AppAgent, startAppMesh} from './helpers.js'

/** Everything the agent sends until it ends the stream (bounded by TIMEOUT_MS), as frames. */
async function framesUntilEnd(stream: ClientHttp2Stream, timeoutMs = 20_000): Promise<Frame[]> {
  const reader = new FrameReader('toClient')
  const frames: Frame[] = []
  const timer = setTimeout(() => stream.destroy(new Error(`the agent did not end the stream within ${timeoutMs} ms`)), timeoutMs)
  try {
    for await (const chunk of stream) frames.push(...reader.push(chunk as Buffer))
  } finally {
    clearTimeout(timer)
  }

  reader.end()
  return frames
}

for (const dataPath of ['native', 'node'] as const) {
  test(`app streams (${dataPath}): garbage, oversized frames, wrong-way frames and silence end the stream; the agent keeps serving`, {timeout: 180_000}, async (t) => {
    const mesh = await startAppMesh(t)
    const agentB: AppAgent = await mesh.agent('agent-b', {dataPath})
    const alice = await mesh.user('alice')
    for (const app of ['script', 'terminal']) {
      const result = await mesh.zt([app, 'config', '--agent', 'agent-b', '--add-user', '@alice', ...(app === 'script' ? ['--add-command', 'sh'] : ['--shell', '/bin/sh'])])
      assert.equal(result.code, 0, result.stderr)
    }

    await agentB.waitForApp('script')
    await agentB.waitForApp('terminal')
    const identity = await readIdentityFile(alice)
    const pool = new HbonePool({credentials: new Credentials(identity), isRevoked: () => false})
    t.after(() => pool.destroy())
    const destination = {address: agentB.ready.addresses.advertise, spiffe: 'spiffe://cluster.local/identity/agent-b'}
    const open = async (app: 'script' | 'terminal'): Promise<ClientHttp2Stream> => (await pool.open(destination, appAuthority(app), {forwarded: `host="app/${app}"`})).stream

    const errorOf = (frames: Frame[]): {code: string; message: string} => {
      assert.deepEqual(frames.map((frame) => frame.type), [FrameType.Error])
      return readError(frames[0])
    }

    // Bytes that are no frames (an HTTP request): refused at the first header.
    const http = await open('script')
    http.end('GET / HTTP/1.1\r\nHost: agent-b\r\n\r\n')
    assert.match(errorOf(await framesUntilEnd(http)).message, /app stream protocol error: unknown frame type 71/)

    // A length of 4 GiB: refused from the header alone, nothing of it is waited for.
    const huge = await open('script')
    const header = Buffer.from([FrameType.Open, 0xFF, 0xFF, 0xFF, 0xFF])
    huge.write(header)
    assert.match(errorOf(await framesUntilEnd(huge)).message, /OPEN frame of 4294967295 bytes/)

    // OPEN that is not JSON, and OPEN for the wrong app's fields.
    const notJson = await open('script')
    notJson.end(encodeFrame(FrameType.Open, Buffer.from([0xC3, 0x28, 0x7B, 0x7D])))
    assert.match(errorOf(await framesUntilEnd(notJson)).message, /OPEN does not carry JSON/)
    const wrongFields = await open('terminal')
    wrongFields.end(encodeFrame(FrameType.Open, {argv: ['sh'], v: 1}))
    assert.match(errorOf(await framesUntilEnd(wrongFields)).message, /needs columns and rows/)

    // A running shell whose client then sends a frame only agents send: the shell is stopped.
    const session = await open('terminal')
    session.write(encodeFrame(FrameType.Open, {columns: 80, rows: 24, term: 'xterm', v: 1}))
    session.write(encodeFrame(FrameType.Stdin, Buffer.from('echo alive\n')))
    await new Promise((resolve) => setTimeout(resolve, 500))
    session.write(encodeFrame(FrameType.Stdout, Buffer.from('from the wrong side')))
    const frames = await framesUntilEnd(session)
    assert.equal(frames[0].type, FrameType.Ready)
    assert.equal(frames.at(-1)!.type, FrameType.Exit, 'the session ends with its EXIT')
    assert.equal(readExit(frames.at(-1)!).signal, 'SIGKILL')
    // The EXIT may reach us before the agent's line reaches its log.
    const ended = await waitFor('the session line on agent-b', () => agentB.appLines(/^terminal session ended$/).at(-1))
    assert.match(String(ended.inputError), /STDOUT frames do not travel to the agent/)

    // Admitted, then silent: the agent gives up after its OPEN deadline.
    const silent = await open('script')
    assert.match(errorOf(await framesUntilEnd(silent, 20_000)).message, /no frame within 10000 ms/)

    // A client that stops reading while its program floods: the agent holds what the stream's windows hold,
    // no more (the program is paused, its output not buffered), and stops the program once the client is gone.
    const flood = await open('script')
    flood.pause()
    flood.write(encodeFrame(FrameType.Open, {argv: ['sh', '-c', 'exec cat /dev/zero'], v: 1}))
    await waitFor('the flood to start', () => agentB.appLines(/^script session started$/).some((line) => String(line.argv).includes('/dev/zero')))
    const before = await footprint(agentB.pid)
    const sampler = sampleFootprint(agentB.pid)
    await new Promise((resolve) => setTimeout(resolve, 3000))
    const peak = await sampler.stop()
    assert.ok(peak.rssMb - before.rssMb < 64, `the agent's memory stays flat while nobody reads (${before.rssMb} → ${peak.rssMb} MB)`)
    flood.destroy()
    const flooded = await waitFor('the flood session to end', () => agentB.appLines(/^script session ended$/).find((line) => String(line.argv).includes('/dev/zero')))
    assert.ok(['SIGPIPE', 'SIGTERM'].includes(String(flooded.signal)), `the program was stopped (${String(flooded.signal)})`)

    // The agent still serves, and says what it refused.
    const after = await mesh.zt(['script', 'run', 'agent-b', '--identity', alice, '--', 'sh', '-c', 'echo "still $((1+1))"'])
    assert.deepEqual([after.code, after.stdout], [0, 'still 2\n'])
    const failed = await waitFor('every broken stream in agent-b\'s log', () => {
      const lines = agentB.appLines(/^(script|terminal) session failed$/)
      return lines.length >= 5 ? lines : undefined
    })
    assert.ok(failed.every((line) => line.identity === 'alice' && line.code === 'ZT_ERR_APP_PROTOCOL'))
  })
}

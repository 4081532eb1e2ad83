// The file app end to end: a 50 MB file published on agent-a arrives intact (SHA-256) where `ztctl file
// get` runs, also when the transfer breaks halfway — a cut connection (resumed within the command) and a
// killed command (resumed by the next run) — and agent-a's own counters show that only the rest was sent
// the second time. The destination is replaced atomically; a tampered partial is caught and discarded; a
// destination this host cannot write is named as such.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {readFile, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {test, type TestContext} from 'node:test'

import {RUN_JS} from '../helpers/controller.js'
import {tempDir, waitFor} from '../proxy/helpers.js'
import {cutProxy} from './cut-proxy.js'
import {type AppAgent, type AppMesh, startAppMesh} from './helpers.js'

const SIZE = 50 * 1000 * 1000
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

interface Published {
  agentA: AppAgent
  alice: string
  content: Buffer
  dir: string
  mesh: AppMesh
  proxy: Awaited<ReturnType<typeof cutProxy>>
}

/** agent-a behind a cut proxy, publishing a 50 MB file as big.bin for '*'; alice, a plain user. */
async function publish(t: TestContext, dataPath: 'native' | 'node'): Promise<Published> {
  const dir = await tempDir(t)
  const mesh = await startAppMesh(t)
  const proxy = await cutProxy(t)
  const agentA = await mesh.agent('agent-a', {advertise: `127.0.0.1:${proxy.port}`, dataPath})
  const [host, port] = agentA.ready.addresses.hbone.split(':')
  proxy.target = {host, port: Number(port)}
  const content = randomBytes(SIZE)
  await writeFile(path.join(dir, 'big.bin'), content)
  const alice = await mesh.user('alice')
  for (const args of [['file', 'config', '--agent', 'agent-a', '--add-user', '*'], ['file', 'publish', path.join(dir, 'big.bin'), '--agent', 'agent-a']]) {
    const result = await mesh.zt(args)
    assert.equal(result.code, 0, result.stderr)
  }

  await waitFor('agent-a to hash big.bin', async () => (await agentA.configDump()).files.find((file) => file.name === 'big.bin' && file.sha256), 20_000)
  return {agentA, alice, content, dir, mesh, proxy}
}

const fileSessions = (agent: AppAgent): Record<string, unknown>[] => agent.appLines(/^file session ended$/).filter((line) => line.op === undefined)
const sentCounter = (agent: AppAgent): Promise<number> => agent.metric('ztctl_app_file_bytes_sent_total', {file: 'big.bin'})

for (const dataPath of ['native', 'node'] as const) {
  test(`file get (${dataPath}): 50 MB intact; a connection cut halfway resumes and agent-a sends only the rest`, {timeout: 180_000}, async (t) => {
    const {agentA, alice, content, dir, mesh, proxy} = await publish(t, dataPath)
    const listed = await mesh.zt(['file', 'list', '--identity', alice])
    assert.equal(listed.code, 0, listed.stderr)
    assert.match(listed.stdout, new RegExp(String.raw`big\.bin\s+agent-a\s+50\.0 MB\s+${sha256(content)}\s+\S+\s+ok`))
    assert.deepEqual(agentA.appLines(/^file session ended$/).filter((line) => line.op === 'stat'), [], 'a listing is no session line (debug level)')

    proxy.cutAfter = SIZE / 2 // the first connection dies once half the file went through
    const result = await mesh.zt(['file', 'get', 'big.bin', '--output', path.join(dir, 'got.bin'), '--identity', alice, '--json'])
    assert.equal(result.code, 0, result.stderr)
    const got = JSON.parse(result.stdout) as {attempts: number; bytesTransferred: number; path: string; resumedFrom: number; sha256: string; size: number}
    assert.equal(proxy.cuts, 1, 'the transfer was cut')
    assert.equal(got.attempts, 2, 'and resumed within the command')
    assert.equal(sha256(await readFile(path.join(dir, 'got.bin'))), sha256(content), 'intact')
    assert.deepEqual([got.sha256, got.size, got.path], [sha256(content), SIZE, path.join(dir, 'got.bin')])

    // agent-a's side: the first transfer broke, the second started where the partial ended and sent the rest.
    const [first, second] = await waitFor('both transfers in agent-a\'s log', () => {
      const sessions = fileSessions(agentA)
      return sessions.length === 2 ? sessions : undefined
    })
    assert.deepEqual([first.offset, first.complete, first.identity], [0, false, 'alice'])
    const resumedAt = Number(second.offset)
    assert.ok(resumedAt > SIZE / 5 && resumedAt <= SIZE / 2 + 1024 * 1024, `resumed halfway (at ${resumedAt})`)
    assert.deepEqual([second.complete, second.bytes], [true, SIZE - resumedAt], 'only the rest was sent')
    assert.equal(await sentCounter(agentA), Number(first.bytes) + SIZE - resumedAt, 'the counter agrees')
    assert.equal(got.bytesTransferred, SIZE, 'the client kept every byte of both attempts, none twice')
  })
}

test('file get: a killed command resumes on its next run; the destination is replaced atomically; a tampered partial is discarded', {timeout: 180_000}, async (t) => {
  const {agentA, alice, content, dir, mesh, proxy} = await publish(t, 'native')
  const destination = path.join(dir, 'out.bin')
  const partial = path.join(dir, `.out.bin.${sha256(content).slice(0, 16)}.part`)
  await writeFile(destination, 'the old version\n')
  const get = (): Promise<{code: null | number; stderr: string; stdout: string}> => mesh.zt(['file', 'get', 'big.bin', '-o', destination, '--identity', alice, '--json'])

  /** Run a get slowly and SIGKILL it once the partial holds more than 20 MB. */
  const killHalfway = async (): Promise<number> => {
    proxy.rate = 10 * 1000 * 1000
    const child = spawn(process.execPath, [RUN_JS, 'file', 'get', 'big.bin', '-o', destination, '--identity', alice], {cwd: mesh.ctl.home, env: mesh.ctl.env, stdio: 'ignore'})
    t.after(() => child.kill('SIGKILL'))
    const size = await waitFor('the partial to pass 20 MB', async () => stat(partial).then((stats) => (stats.size > 20_000_000 ? stats.size : 0), () => 0), 60_000)
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('exit', resolve))
    proxy.rate = undefined
    assert.ok(size < SIZE, 'killed before the end')
    return (await stat(partial)).size
  }

  const kept = await killHalfway()
  assert.equal(await readFile(destination, 'utf8'), 'the old version\n', 'the destination is untouched while the download is partial')
  await waitFor('the broken transfer in agent-a\'s log', () => fileSessions(agentA).length === 1)
  const before = await sentCounter(agentA)
  const resumed = JSON.parse((await get()).stdout) as {attempts: number; bytesTransferred: number; resumedFrom: number}
  assert.deepEqual(resumed, {...resumed, attempts: 1, bytesTransferred: SIZE - kept, resumedFrom: kept}, 'the next run fetched only the rest')
  assert.equal(await sentCounter(agentA) - before, SIZE - kept, 'and agent-a sent only the rest')
  assert.equal(sha256(await readFile(destination)), sha256(content))
  await assert.rejects(stat(partial), /ENOENT/, 'the partial became the destination')

  // A partial whose bytes were changed fails the SHA-256 check: it is deleted, the destination stays.
  await killHalfway()
  const handle = await import('node:fs/promises').then(({open}) => open(partial, 'r+'))
  await handle.write(Buffer.from([content[4096] ^ 0xFF]), 0, 1, 4096)
  await handle.close()
  const corrupt = await get()
  assert.equal(corrupt.code, 1, corrupt.stderr)
  assert.match(corrupt.stdout, /ZT_ERR_FILE_CORRUPT/)
  assert.match(corrupt.stdout, /does not match its SHA-256 .*the partial download was deleted/)
  await assert.rejects(stat(partial), /ENOENT/)
  assert.equal(sha256(await readFile(destination)), sha256(content), 'the previous complete file is still there')
  const again = await get()
  assert.equal(again.code, 0, again.stdout)
  assert.equal((JSON.parse(again.stdout) as {resumedFrom: number}).resumedFrom, 0)

  // A destination this host cannot write is this host's failure, named, and not retried.
  const unwritable = await mesh.zt(['file', 'get', 'big.bin', '-o', path.join(destination, 'inside-a-file.bin'), '--identity', alice])
  assert.equal(unwritable.code, 1, unwritable.stderr)
  assert.match(unwritable.stderr, /ZT_ERR_FILE_WRITE.*cannot write .*out\.bin.*\nTry this: fetch to a place you can write/)

  // Publishing what the agent cannot read fails with the agent's own reason (it reports the file in its ack).
  const missing = await mesh.zt(['file', 'publish', path.join(dir, 'no-such.bin'), '--agent', 'agent-a'])
  assert.equal(missing.code, 1, missing.stderr)
  assert.match(missing.stderr, /ZT_ERR_NOT_APPLIED.*agent agent-a could not apply file no-such\.bin@agent-a: cannot read .*no-such\.bin: no such file\n/)
})

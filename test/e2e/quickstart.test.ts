// `ztctl quickstart` as a user runs it: one process, a working tunnel, a clean exit on Ctrl-C.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {access, mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'

import {RUN_JS} from '../helpers/controller.js'
import {startQuickstart} from '../helpers/quickstart.js'

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

test('quickstart serves the demo through the tunnel, then cleans up on SIGINT', async (t) => {
  const {child, mesh, stderr} = await startQuickstart(t)
  assert.deepEqual(mesh.agents.map((a) => a.name), ['agent-a', 'agent-b'])
  assert.match(stderr(), /opening the tunnels/, 'progress goes to stderr')

  const response = await fetch(mesh.demo.url)
  assert.equal(response.status, 200)
  assert.match(await response.text(), /quickstart demo service/)

  // What the banner tells users to try works from another process.
  const status = spawn(process.execPath, [RUN_JS, 'proxy-config', 'connections', 'agent-b', '-o', 'json'], {env: {...process.env, ZTCTL_HOME: mesh.home}})
  let statusOut = ''
  status.stdout.on('data', (chunk: Buffer) => (statusOut += chunk))
  const [statusCode] = await once(status, 'exit')
  assert.equal(statusCode, 0)
  assert.ok(Array.isArray(JSON.parse(statusOut)))
  const metrics = await (await fetch(`http://${mesh.agents[1].addresses.metrics}/metrics`)).text()
  assert.match(metrics, /istio_tcp_connections_opened_total\{reporter="destination".*destination_service="tcp\/demo".*\} [1-9]/)

  child.kill('SIGINT')
  const [code] = await once(child, 'exit')
  assert.equal(code, 130, `Ctrl-C exits 130 (README): ${stderr()}`)
  for (const agent of mesh.agents) assert.equal(alive(agent.pid), false, 'agent process is gone')
  await assert.rejects(access(mesh.home), 'the temporary home is removed')
})

test('agents of a quickstart killed with SIGKILL exit by themselves', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'zt-qs-kill-'))
  t.after(() => rm(dir, {force: true, recursive: true}))
  const {child, mesh} = await startQuickstart(t, ['--dir', dir])
  child.kill('SIGKILL')
  await once(child, 'exit')
  const deadline = Date.now() + 15_000
  while (mesh.agents.some((agent) => alive(agent.pid)) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }

  const survivors = mesh.agents.filter((agent) => alive(agent.pid))
  for (const agent of survivors) process.kill(agent.pid, 'SIGKILL') // never leave one behind, even on failure
  assert.deepEqual(survivors.map((agent) => agent.name), [], 'no orphaned agent')
})

test('quickstart --port P fails with agent-a\'s reason when another process holds P', async (t) => {
  const {createServer} = await import('node:net')
  const held = createServer((socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\nhello from the ztctl quickstart demo xx\n'))
  held.listen(0, '127.0.0.1')
  await once(held, 'listening')
  t.after(() => held.close())
  const port = (held.address() as {port: number}).port
  const child = spawn(process.execPath, [RUN_JS, 'quickstart', '--port', String(port)], {env: {...process.env, NO_COLOR: '1'}, stdio: ['ignore', 'pipe', 'pipe']})
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
  const [code] = await once(child, 'exit')
  assert.equal(code, 6, stderr)
  assert.match(stderr, new RegExp(`ZT_ERR_NOT_APPLIED\\): agent agent-a could not apply inbound tcp/demo@agent-a: cannot listen on 127\\.0\\.0\\.1:${port} for tcp/demo: address already in use`))
  assert.doesNotMatch(stderr, /is running/)
})

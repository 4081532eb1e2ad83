// `ztctl quickstart` as a user runs it: one process, a working tunnel, a clean exit on Ctrl-C.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {access} from 'node:fs/promises'
import {test} from 'node:test'

import {RUN_JS} from '../helpers/controller.js'

interface QuickstartJson {
  agents: {addresses: {admin: string; metrics: string}; name: string; pid: number}[]
  demo: {service: string; url: string}
  home: string
}

test('quickstart serves the demo through the tunnel, then cleans up on SIGINT', async (t) => {
  const child = spawn(process.execPath, [RUN_JS, 'quickstart', '--json'], {env: {...process.env, NO_COLOR: '1'}, stdio: ['ignore', 'pipe', 'pipe']})
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
  const deadline = Date.now() + 30_000
  while (!stdout.trim().endsWith('}') && Date.now() < deadline && child.exitCode === null) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }

  assert.equal(child.exitCode, null, `quickstart exited early: ${stderr}`)
  const mesh = JSON.parse(stdout) as QuickstartJson
  assert.deepEqual(mesh.agents.map((a) => a.name), ['agent-a', 'agent-b'])
  assert.match(stderr, /opening the tunnels/, 'progress goes to stderr')

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
  assert.equal(code, 0, stderr)
  for (const agent of mesh.agents) assert.throws(() => process.kill(agent.pid, 0), 'agent process is gone')
  await assert.rejects(access(mesh.home), 'the temporary home is removed')
})

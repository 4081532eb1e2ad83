// `ztctl agent run` as real processes (bin/run.js, built dist/): static --config, --ready-file with
// port 0 everywhere, JSON logs on stdout, and SIGTERM draining.
import assert from 'node:assert/strict'
import {type ChildProcess, spawn} from 'node:child_process'
import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {test, type TestContext} from 'node:test'
import {fileURLToPath} from 'node:url'

import type {ReadyFile} from '../../src/lib/proxy/launch.js'
import {createMesh, dial, echoServer, httpGet, roundTrip, tempDir, tunnelConfig, waitFor} from './helpers.js'

const RUN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'run.js')

interface AgentProcess {
  child: ChildProcess
  exited: Promise<number | null>
  ready: ReadyFile
  stdout: () => string
}

async function spawnAgent(t: TestContext, dir: string, name: string, identity: object, config: object, drain = '5s'): Promise<AgentProcess> {
  const files = {config: path.join(dir, `${name}.config.json`), identity: path.join(dir, `${name}.json`), ready: path.join(dir, `${name}.ready.json`)}
  await writeFile(files.identity, JSON.stringify(identity), {mode: 0o600})
  await writeFile(files.config, JSON.stringify(config))
  const child = spawn(process.execPath, [RUN, 'agent', 'run', '-i', files.identity, '--config', files.config, '--hbone', '127.0.0.1:0', '--admin', '127.0.0.1:0',
    '--metrics', '127.0.0.1:0', '--readiness', '127.0.0.1:0', '--ready-file', files.ready, '--drain-timeout', drain], {stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk))
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const ready = await waitFor(`${name} ready file (stderr: ${stderr})`, async () => readFile(files.ready, 'utf8').then((text) => JSON.parse(text) as ReadyFile, () => undefined), 20_000)
  return {child, exited, ready, stdout: () => stdout}
}

test('agent processes: a static config path works end to end; SIGTERM stops accepting, drains, then exits', async (t) => {
  const dir = await tempDir(t)
  const mesh = await createMesh()
  const [client, server] = await Promise.all([mesh.identity('agent-a'), mesh.identity('agent-b')])
  const echo = await echoServer(t)
  const targets = [{host: '127.0.0.1', port: echo.port}]
  const serverAgent = await spawnAgent(t, dir, 'agent-b', server, tunnelConfig({client, server, serverHbone: '127.0.0.1:1', targets}))
  const clientAgent = await spawnAgent(t, dir, 'agent-a', client, tunnelConfig({client, server, serverHbone: serverAgent.ready.addresses.advertise, targets}), '3s')
  const listen = clientAgent.ready.addresses.inbound['tcp/echo@agent-a']
  assert.match(listen, /^127\.0\.0\.1:\d+$/)
  assert.equal((await roundTrip(listen, Buffer.from('through processes'))).toString(), 'through processes')
  assert.equal((await httpGet(`http://${clientAgent.ready.addresses.readiness}/healthz/ready`)).status, 200)
  const metrics = await httpGet(`http://${serverAgent.ready.addresses.metrics}/metrics`)
  assert.match(metrics.body, /istio_tcp_connections_closed_total\{reporter="destination".*\} 1/)

  // A live connection, then SIGTERM: the listener closes, the live connection keeps working.
  const live = await dial(listen)
  live.write('before')
  await new Promise((resolve) => live.once('data', resolve))
  clientAgent.child.kill('SIGTERM')
  await waitFor('the drain log line', () => clientAgent.stdout().includes('"message":"draining"'))
  await assert.rejects(dial(listen), /ECONNREFUSED/)
  const during: Buffer[] = []
  live.on('data', (chunk: Buffer) => during.push(chunk))
  live.end('during-drain')
  await new Promise((resolve) => live.once('end', resolve))
  assert.equal(Buffer.concat(during).toString(), 'during-drain')
  live.destroy()
  assert.equal(await clientAgent.exited, 0)
  const lines = clientAgent.stdout().trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
  assert.ok(lines.some((line) => line.message === 'agent stopped'))
  assert.ok(!lines.some((line) => line.message === 'drain duration expired with pending connections, forcefully shutting down'))

  // Another client whose connection never ends: cut at the drain deadline, then a clean exit.
  const other = await mesh.identity('agent-c')
  const otherConfig = tunnelConfig({client: other, server, serverHbone: serverAgent.ready.addresses.advertise, targets})
  const otherAgent = await spawnAgent(t, dir, 'agent-c', other, otherConfig, '1s')
  const stuck = await dial(otherAgent.ready.addresses.inbound['tcp/echo@agent-c'])
  stuck.on('error', () => {})
  stuck.write('hold')
  await new Promise((resolve) => stuck.once('data', resolve))
  const cut = new Promise((resolve) => {
    stuck.once('end', resolve)
    stuck.once('close', resolve)
  })
  otherAgent.child.kill('SIGTERM')
  assert.equal(await otherAgent.exited, 0)
  await cut
  assert.match(otherAgent.stdout(), /drain duration expired with pending connections, forcefully shutting down/)
  stuck.destroy()
  serverAgent.child.kill('SIGTERM')
  assert.equal(await serverAgent.exited, 0)
})

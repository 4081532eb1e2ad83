// `ztctl agent run` as real processes (bin/run.js, built dist/): static --config, --ready-file with
// port 0 everywhere, JSON logs on stdout, and SIGTERM draining; the lean daemon the command execs into,
// its startup errors, and its idle memory trim.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {writeFile} from 'node:fs/promises'
import {createServer} from 'node:net'
import path from 'node:path'
import {test, type TestContext} from 'node:test'
import {fileURLToPath} from 'node:url'

import {type AgentProcess, spawnAgentProcess} from '../helpers/agent-process.js'
import {createMesh, dial, echoServer, httpGet, roundTrip, sha256, tempDir, tunnelConfig, waitFor} from './helpers.js'

const RUN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'run.js')

async function spawnAgent(t: TestContext, dir: string, name: string, identity: object, config: object, drain = '5s', env: NodeJS.ProcessEnv = {}): Promise<AgentProcess> {
  const files = {config: path.join(dir, `${name}.config.json`), identity: path.join(dir, `${name}.json`), ready: path.join(dir, `${name}.ready.json`)}
  await writeFile(files.identity, JSON.stringify(identity), {mode: 0o600})
  await writeFile(files.config, JSON.stringify(config))
  return spawnAgentProcess(t, {args: ['--config', files.config, '--drain-timeout', drain], env, identityFile: files.identity, readyFile: files.ready})
}

/** Two agent processes: agent-a (inbound tunnel tcp/echo, listening on `listen`) → agent-b → an echo server. */
async function spawnPair(t: TestContext, dir: string, options: {clientDrain?: string; clientEnv?: NodeJS.ProcessEnv; serverEnv?: NodeJS.ProcessEnv} = {}) {
  const mesh = await createMesh()
  const [client, server] = await Promise.all([mesh.identity('agent-a'), mesh.identity('agent-b')])
  const echo = await echoServer(t)
  const targets = [{host: '127.0.0.1', port: echo.port}]
  const serverAgent = await spawnAgent(t, dir, 'agent-b', server, tunnelConfig({client, server, serverHbone: '127.0.0.1:1', targets}), '5s', options.serverEnv)
  const clientConfig = tunnelConfig({client, server, serverHbone: serverAgent.ready.addresses.advertise, targets})
  const clientAgent = await spawnAgent(t, dir, 'agent-a', client, clientConfig, options.clientDrain ?? '5s', options.clientEnv)
  return {clientAgent, listen: clientAgent.ready.addresses.inbound['tcp/echo@agent-a'], mesh, server, serverAgent, targets}
}

test('agent processes: a static config path works end to end; SIGTERM stops accepting, drains, then exits', async (t) => {
  const dir = await tempDir(t)
  const {clientAgent, listen, mesh, server, serverAgent, targets} = await spawnPair(t, dir, {clientDrain: '3s'})
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
  // Ctrl-C drains the same way and exits 130 (README "Exit codes").
  serverAgent.child.kill('SIGINT')
  assert.equal(await serverAgent.exited, 130)
})

const cmdline = (pid: number): string[] => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
const rssFileKiB = (pid: number): number => Number(/^RssFile:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1])

test('agent processes: `agent run` replaces itself with the lean daemon (same PID, dist/lib/proxy/daemon/main.js); ZTCTL_AGENT_IN_PROCESS=1 keeps it in the CLI process', async (t) => {
  const dir = await tempDir(t)
  const {clientAgent, listen, serverAgent} = await spawnPair(t, dir, {clientEnv: {ZTCTL_AGENT_IN_PROCESS: '1'}})
  assert.equal(serverAgent.ready.pid, serverAgent.child.pid, 'the ready file names the spawned process itself')
  const argv = cmdline(serverAgent.child.pid!)
  assert.ok(argv.some((arg) => arg.endsWith(path.join('dist', 'lib', 'proxy', 'daemon', 'main.js'))), `cmdline: ${argv.join(' ')}`)
  assert.ok(!argv.some((arg) => arg.endsWith('run.js')), `cmdline: ${argv.join(' ')}`)
  assert.deepEqual(argv.slice(argv.indexOf('agent'), argv.indexOf('agent') + 2), ['agent', 'run'], '`ps` still shows the command')

  assert.equal(clientAgent.ready.pid, clientAgent.child.pid)
  assert.ok(!cmdline(clientAgent.child.pid!).some((arg) => arg.endsWith('main.js')), 'in-process: no exec')
  const payload = randomBytes(200_000)
  assert.equal(sha256(await roundTrip(listen, payload)), sha256(payload))
  assert.equal(JSON.parse(serverAgent.stdout().split('\n')[0]!).message, 'listener established', 'the daemon logs JSON lines on the same stdout')

  for (const agent of [clientAgent, serverAgent]) agent.child.kill('SIGTERM')
  assert.equal(await serverAgent.exited, 0)
  assert.equal(await clientAgent.exited, 0)
  assert.match(serverAgent.stdout(), /"message":"agent stopped"/)
})

test('agent processes: startup failures read as before: a bad flag is a usage error (2); a taken HBONE port is ZT_ERR_LISTEN (6), with a suggestion and no stack', async (t) => {
  const dir = await tempDir(t)
  const mesh = await createMesh()
  const identityFile = path.join(dir, 'agent-a.json')
  const configFile = path.join(dir, 'config.json')
  await writeFile(identityFile, JSON.stringify(await mesh.identity('agent-a')), {mode: 0o600})
  await writeFile(configFile, JSON.stringify(tunnelConfig({client: await mesh.identity('agent-x'), server: await mesh.identity('agent-y'), serverHbone: '127.0.0.1:1', targets: []})))
  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.after(() => taken.close())
  const hbone = `127.0.0.1:${(taken.address() as {port: number}).port}`
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) => new Promise<{code: number | null; stderr: string; stdout: string}>((resolve) => {
    const child = execFile(process.execPath, [RUN, 'agent', 'run', '-i', identityFile, ...args], {env: {...process.env, NO_COLOR: '1', ...env}}, (error, stdout, stderr) => {
      resolve({code: child.exitCode, stderr, stdout})
    })
  })
  const listeners = ['--config', configFile, '--admin', '127.0.0.1:0', '--metrics', '127.0.0.1:0', '--readiness', '127.0.0.1:0']

  const bad = await run(['--bogus'])
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /Nonexistent flag: --bogus/)

  const expected = new RegExp(`^Error \\(ZT_ERR_LISTEN\\): cannot listen on ${hbone.replaceAll('.', '\\.')} for hbone: address already in use\nTry this: pick another --hbone address \\(port 0 picks a free one\\)\n$`)
  for (const env of [{}, {ZTCTL_AGENT_IN_PROCESS: '1'}]) {
    const failed = await run(['--hbone', hbone, ...listeners], env)
    assert.equal(failed.code, 6, `${JSON.stringify(env)}: ${failed.stderr}`)
    assert.match(failed.stderr, expected, JSON.stringify(env))
  }

  const json = await run(['--hbone', hbone, ...listeners, '--json'])
  assert.equal(json.code, 6)
  assert.equal((JSON.parse(json.stdout) as {error: {code: string}}).error.code, 'ZT_ERR_LISTEN')

  const badTrim = await run(['--hbone', '127.0.0.1:0', ...listeners], {ZTCTL_AGENT_IDLE_TRIM: 'soon'})
  assert.equal(badTrim.code, 2)
  assert.match(badTrim.stderr, /ZTCTL_AGENT_IDLE_TRIM="soon" is not a duration/)
})

test('agent processes: once idle, the agent trims its memory (RssFile drops), only once per idle period, and carries the next connection byte for byte', async (t) => {
  const dir = await tempDir(t)
  const env = {ZTCTL_AGENT_IDLE_TRIM: '1500ms', ZTCTL_LOG_LEVEL: 'debug'}
  const {clientAgent, listen, serverAgent} = await spawnPair(t, dir, {clientEnv: env, serverEnv: env})
  const trims = (agent: AgentProcess) => agent.stdout().split('\n').filter((line) => line.includes('"message":"idle memory trim"')).map((line) => JSON.parse(line) as {
    after: {fileKiB: number}; before: {fileKiB: number}; errors?: string[]; mappings: number
  })

  // Traffic, then read the resident file pages before the server agent has been idle for 1.5 s.
  for (let i = 0; i < 10; i++) {
    const payload = randomBytes(100_000)
    assert.equal(sha256(await roundTrip(listen, payload)), sha256(payload))
  }

  const pid = serverAgent.child.pid!
  const trimsBefore = trims(serverAgent).length
  const fileBefore = rssFileKiB(pid)
  await waitFor('an idle trim after the traffic', () => trims(serverAgent).length > trimsBefore, 10_000)
  const fileAfter = rssFileKiB(pid)
  const trim = trims(serverAgent).at(-1)!
  assert.ok(trim.mappings > 0 && trim.errors === undefined, JSON.stringify(trim))
  assert.ok(fileAfter < fileBefore * 0.8, `RssFile ${fileBefore} kB before the trim, ${fileAfter} kB after`)
  assert.ok(trim.after.fileKiB < trim.before.fileKiB, JSON.stringify(trim))

  // No connection, no second trim.
  const count = trims(serverAgent).length
  await new Promise((resolve) => setTimeout(resolve, 3500))
  assert.equal(trims(serverAgent).length, count, 'trimmed again without a connection in between')

  // The pages fault back in: the next connection is carried byte for byte.
  const payload = randomBytes(1_000_000)
  assert.equal(sha256(await roundTrip(listen, payload)), sha256(payload))
  await waitFor('the trim after that connection', () => trims(serverAgent).length > count, 10_000)
  for (const agent of [clientAgent, serverAgent]) agent.child.kill('SIGTERM')
  assert.equal(await serverAgent.exited, 0)
  assert.equal(await clientAgent.exited, 0)
})

// Day-two commands against a real controller and a real agent process: tunnel describe, logs (and -f
// until Ctrl-C), proxy-config log --level, --watch on proxy-status, tunnel list and proxy-config
// connections (one document per refresh off a terminal, exit 130 on Ctrl-C), /metrics process metrics.
import assert from 'node:assert/strict'
import {type ChildProcess, spawn} from 'node:child_process'
import {test} from 'node:test'

import {deadPort, echoServer, waitFor} from '../proxy/helpers.js'
import {RUN_JS, startTestController, type TestController} from '../helpers/controller.js'

/** Start `ztctl ARGS` in the background, collecting its output. */
function background(ctl: TestController, args: string[]): {child: ChildProcess; exited: Promise<null | number>; stdout: () => string} {
  const child = spawn(process.execPath, [RUN_JS, ...args], {cwd: ctl.home, env: ctl.env, stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk))
  const exited = new Promise<null | number>((resolve) => child.once('exit', (code) => resolve(code)))
  return {child, exited, stdout: () => stdout}
}

test('tunnel describe, logs -f, proxy-config log --level, --watch, process metrics', async (t) => {
  const ctl = await startTestController(t)
  const echo = await echoServer(t)
  const [a] = await Promise.all([ctl.startAgent('agent-a'), ctl.startAgent('agent-b')])
  assert.equal((await ctl.run(['tunnel', 'open', 'outbound', 'tcp/echo', '--agent', 'agent-b', '--target', `127.0.0.1:${echo.port}`, '--allow', '#agent'])).code, 0)
  const port = await deadPort()
  const inbound = await ctl.run(['tunnel', 'open', 'inbound', 'tcp/echo', '--agent', 'agent-a', '--listen', String(port)])
  assert.equal(inbound.code, 0, inbound.stderr)
  assert.equal((await ctl.run(['policy', 'create', 'agents-only', '--action', 'ALLOW', '--from', '#agent', '--service', 'tcp/echo'])).code, 0)

  const described = await ctl.run(['tunnel', 'describe', 'tcp/echo'])
  assert.equal(described.code, 0, described.stderr)
  assert.match(described.stdout, new RegExp(String.raw`^Service: {3}tcp/echo\nInbound:\n {2}agent-a: listen 127\.0\.0\.1:${port} — applied\nOutbound:\n {2}agent-b: → 127\.0\.0\.1:\d+ — applied\n {4}allow: #agent\nPolicies:\n {2}agents-only: ALLOW from #agent`))
  assert.equal((await ctl.run(['tunnel', 'describe', 'tcp/nope'])).code, 3)

  // logs: the agent's recent JSON lines, by name.
  const logs = await ctl.run(['logs', 'agent-a', '--tail', '50'])
  assert.equal(logs.code, 0, logs.stderr)
  const lines = logs.stdout.trim().split('\n').map((line) => JSON.parse(line) as {level: string; message: string})
  assert.ok(lines.some((line) => line.message === 'configuration applied'), logs.stdout)

  // logs -f prints lines written after it started; Ctrl-C ends it with 130.
  const follow = background(ctl, ['logs', 'agent-a', '-f', '--tail', '0'])
  t.after(() => follow.child.kill('SIGKILL'))
  let round = 0
  await waitFor('a new line on logs -f', async () => {
    // Each change makes agent-a log "configuration applied"; repeat until the follower is connected.
    assert.equal((await ctl.run(['policy', 'create', `p${round++}`, '--action', 'ALLOW', '--from', '#agent'])).code, 0)
    return follow.stdout().includes('configuration applied')
  }, 20_000)
  follow.child.kill('SIGINT')
  assert.equal(await follow.exited, 130)

  // proxy-config log: set and read the level at run time.
  const level = await ctl.run(['proxy-config', 'log', 'agent-a', '--level', 'debug'])
  assert.equal(level.code, 0, level.stderr)
  assert.match(level.stdout, /agent-a log level: debug/)
  assert.match((await ctl.run(['pc', 'log', 'agent-a'])).stdout, /agent-a log level: debug/)
  assert.equal((await ctl.run(['proxy-config', 'log', 'agent-a', '--level', 'loud'])).code, 2)

  // --watch off a terminal: one JSON document per refresh; Ctrl-C exits 130.
  for (const args of [['proxy-status', '--watch', '--interval', '200ms', '-o', 'json'], ['tunnel', 'list', '-w', '--interval', '200ms', '-o', 'json'], ['proxy-config', 'connections', 'agent-a', '--watch', '--interval', '200ms', '-o', 'json']]) {
    const watch = background(ctl, args)
    t.after(() => watch.child.kill('SIGKILL'))
    await waitFor(`two refreshes of ${args[0]}`, () => watch.stdout().trim().split('\n').length >= 2, 15_000)
    watch.child.kill('SIGINT')
    assert.equal(await watch.exited, 130, args.join(' '))
    for (const line of watch.stdout().trim().split('\n')) JSON.parse(line)
  }

  const metrics = await (await fetch(`http://${a.ready.addresses.metrics}/metrics`)).text()
  for (const name of ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'process_open_fds', 'nodejs_eventloop_lag_seconds']) {
    assert.match(metrics, new RegExp(`^${name} \\d`, 'm'))
  }
})

// `controller run --hub`: the controller embeds a hub (its identity, role hub, issued in-process and its
// configuration read from the store); two agents started with --no-listen reach each other through it.
// Real processes on 127.0.0.1, no root needed.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {createServer} from 'node:net'
import path from 'node:path'
import {test} from 'node:test'

import {RUN_JS, startTestController} from '../helpers/controller.js'
import {deadPort, roundTrip, waitFor} from '../proxy/helpers.js'

test('controller run --hub: agents with no listener reach each other through the embedded hub', async (t) => {
  const hubPort = await deadPort()
  const ctl = await startTestController(t, {extraArgs: ['--hub', '--hub-listen', `127.0.0.1:${hubPort}`]})
  const echo = createServer((socket) => socket.pipe(socket))
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
  t.after(() => echo.close())
  const run = async (args: string[]) => {
    const result = await ctl.run(args)
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stdout}${result.stderr}`)
    return result.stdout
  }

  for (const name of ['agent-a', 'agent-b']) {
    await run(['identity', 'create', name, '-a', 'agent', '--out', path.join(ctl.home, `${name}.jwt`)])
    await run(['enroll', path.join(ctl.home, `${name}.jwt`), '--out', path.join(ctl.home, `${name}.json`)])
  }

  const identities = JSON.parse(await run(['identity', 'list', '-o', 'json'])) as {name: string; roles: string[]}[] | {items: {name: string; roles: string[]}[]}
  const list = Array.isArray(identities) ? identities : identities.items
  assert.deepEqual(list.find((identity) => identity.name === 'hub')?.roles, ['hub'], 'the embedded hub has its own identity with role hub')
  const agents = ['agent-a', 'agent-b'].map((name) => {
    const child = spawn(process.execPath, [RUN_JS, 'agent', 'run', '-i', path.join(ctl.home, `${name}.json`), '--no-listen', '--hub', `127.0.0.1:${hubPort}`,
      '--admin', `unix:${path.join(ctl.home, `${name}.sock`)}`], {env: ctl.env, stdio: ['ignore', 'pipe', 'pipe']})
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    t.after(() => {
      child.kill('SIGKILL')
    })
    return {child, output: () => output}
  })
  await waitFor('both agents are connected to the controller', async () => {
    const status = JSON.parse(await run(['proxy-status', '-o', 'json'])) as {agents: {name: string; online: boolean}[]}
    return status.agents.filter((agent) => agent.online).length === 2
  }, 20_000)
  await run(['tunnel', 'open', 'outbound', 'tcp/echo', '--agent', 'agent-b', '--target', `127.0.0.1:${(echo.address() as {port: number}).port}`])
  const listenPort = await deadPort()
  await run(['tunnel', 'open', 'inbound', 'tcp/echo', '--agent', 'agent-a', '--listen', `127.0.0.1:${listenPort}`])
  const listen = await waitFor('agent-a listens', async () => {
    const dump = JSON.parse(await run(['proxy-config', 'all', '--admin', `unix:${path.join(ctl.home, 'agent-a.sock')}`, '-o', 'json'])) as {config: {addresses: {inbound: Record<string, string>}}; hubs: {state: string}[]}
    return dump.hubs[0]?.state === 'connected' ? dump.config.addresses.inbound['tcp/echo@agent-a'] : undefined
  }, 20_000).catch((error: Error) => assert.fail(`${error.message}\n${agents.map((agent) => agent.output()).join('\n')}`))
  const echoed = await waitFor('a round trip through the embedded hub', async () => (await roundTrip(listen, Buffer.from('via the controller')).catch(() => Buffer.alloc(0))).toString(), 15_000)
  assert.equal(echoed, 'via the controller')
  assert.match(await run(['proxy-status']), /agent-a .*hub \(/)
})

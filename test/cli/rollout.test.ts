// Success means applied, with a real controller and real agent processes: a tunnel whose listener cannot
// bind fails `tunnel open` with the agent's reason, the agent's other tunnels keep working, proxy-status
// and tunnel list show the reason (also after unrelated changes), and the agent binds it once the port is
// free. --no-wait, --dry-run, an offline agent and policy warnings.
import assert from 'node:assert/strict'
import {once} from 'node:events'
import {createServer, type Server} from 'node:net'
import {test} from 'node:test'

import {echoServer, roundTrip, waitFor} from '../proxy/helpers.js'
import {startTestController} from '../helpers/controller.js'

async function holdPort(): Promise<{port: number; server: Server}> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {port: (server.address() as {port: number}).port, server}
}

interface StatusJson {
  agents: {name: string; reason?: string; software?: string; status: string}[]
}

test('a listener that cannot bind fails tunnel open with the agent\'s reason; the agent\'s other tunnels keep working', async (t) => {
  const ctl = await startTestController(t)
  const echo = await echoServer(t)
  const [a] = await Promise.all([ctl.startAgent('agent-a'), ctl.startAgent('agent-b')])
  for (const service of ['tcp/echo', 'tcp/echo2']) {
    const outbound = await ctl.run(['tunnel', 'open', 'outbound', service, '--agent', 'agent-b', '--target', `127.0.0.1:${echo.port}`])
    assert.equal(outbound.code, 0, outbound.stderr)
    assert.match(outbound.stdout, /applied by agent-b/)
  }

  const free = await holdPort()
  free.server.close()
  const opened = await ctl.run(['tunnel', 'open', 'inbound', 'tcp/echo', '--agent', 'agent-a', '--listen', String(free.port)])
  assert.equal(opened.code, 0, opened.stderr)
  assert.match(opened.stdout, /inbound tcp\/echo opened on agent-a, listening on 127\.0\.0\.1:\d+ \(version \d+, applied by agent-a\)/)
  const working = `127.0.0.1:${free.port}`
  assert.equal((await roundTrip(working, Buffer.from('one'))).toString(), 'one')

  // Another process holds the port: the agent's reason comes back, with exit 6 (conflict).
  const held = await holdPort()
  t.after(() => held.server.close())
  const failed = await ctl.run(['tunnel', 'open', 'inbound', 'tcp/echo2', '--agent', 'agent-a', '--listen', String(held.port)])
  assert.equal(failed.code, 6, failed.stdout + failed.stderr)
  assert.match(failed.stderr, new RegExp(`Error \\(ZT_ERR_NOT_APPLIED\\): agent agent-a could not apply inbound tcp/echo2@agent-a: cannot listen on 127\\.0\\.0\\.1:${held.port} for tcp/echo2: address already in use`))
  assert.match(failed.stderr, /Try this: free that port/)
  const failedJson = await ctl.run(['tunnel', 'open', 'inbound', 'tcp/echo2', '--agent', 'agent-a', '--listen', String(held.port), '--json'])
  assert.equal(JSON.parse(failedJson.stdout).error.details.code, 'EADDRINUSE')

  // The other tunnel of that agent still carries traffic.
  assert.equal((await roundTrip(working, Buffer.from('still here'))).toString(), 'still here')

  // proxy-status says ERROR with the reason and the agent's software version, also after an unrelated change.
  const policy = await ctl.run(['policy', 'create', 'unrelated', '--action', 'ALLOW', '--from', '#agent'])
  assert.equal(policy.code, 0, policy.stderr)
  const status = JSON.parse((await ctl.run(['proxy-status', '-o', 'json'])).stdout) as StatusJson
  const agentA = status.agents.find((agent) => agent.name === 'agent-a')!
  assert.equal(agentA.status, 'ERROR')
  assert.match(agentA.reason!, /inbound tcp\/echo2@agent-a: cannot listen on .* address already in use/)
  assert.match(agentA.software!, /^\d+\.\d+\.\d+/)
  assert.equal(status.agents.find((agent) => agent.name === 'agent-b')!.status, 'SYNCED')
  const table = (await ctl.run(['proxy-status'])).stdout
  assert.match(table, /^NAME\s+STATUS\s+CONFIG\s+ONLINE\s+HBONE\s+LAST SEEN\s+VERSION\s+REASON/)
  assert.match(table, /agent-a\s+ERROR\s+\d+\/\d+\s+yes .* address already in use/)

  // tunnel list: each end's own state.
  const list = (await ctl.run(['tunnel', 'list'])).stdout
  assert.match(list, /tcp\/echo\s+agent-a listen 127\.0\.0\.1:\d+ \(applied\)\s+agent-b → 127\.0\.0\.1:\d+ \(applied\)/)
  assert.match(list, /tcp\/echo2\s+agent-a listen 127\.0\.0\.1:\d+ \(error: cannot listen on .*address already in use\)/)

  // Once the port is free, the agent binds it on its own and says so.
  held.server.close()
  await waitFor('agent-a to report tcp/echo2 applied', async () => {
    const now = JSON.parse((await ctl.run(['proxy-status', '-o', 'json'])).stdout) as StatusJson
    return now.agents.find((agent) => agent.name === 'agent-a')?.status === 'SYNCED'
  }, 20_000)
  assert.equal((await roundTrip(`127.0.0.1:${held.port}`, Buffer.from('two'))).toString(), 'two')
  assert.match(a.logs(), /address already in use/)
})

test('--no-wait, --dry-run, an offline agent, a policy naming unknown identities and services', async (t) => {
  const ctl = await startTestController(t)
  await ctl.startAgent('agent-a')
  for (const args of [['identity', 'create', 'agent-c', '-a', 'agent']]) assert.equal((await ctl.run(args)).code, 0)

  const dry = await ctl.run(['tunnel', 'open', 'outbound', 'tcp/web', '--agent', 'agent-a', '--target', '127.0.0.1:9', '--dry-run'])
  assert.equal(dry.code, 0, dry.stderr)
  assert.match(dry.stdout, /^dry run, nothing changed; would send PUT \/v1\/resources\/outbound\/tcp\/web@agent-a\n\{/)
  assert.match((await ctl.run(['tunnel', 'list'])).stdout, /^No tunnels/)
  const dryClose = await ctl.run(['tunnel', 'close', 'outbound', 'tcp/web', '--agent', 'agent-a', '--dry-run'])
  assert.equal(dryClose.code, 3, 'a dry run still checks that the tunnel exists')

  const offline = await ctl.run(['tunnel', 'open', 'outbound', 'tcp/web', '--agent', 'agent-c', '--target', '127.0.0.1:9'])
  assert.equal(offline.code, 5, offline.stderr)
  assert.match(offline.stderr, /ZT_ERR_AGENT_OFFLINE\): agent agent-c is not connected to the controller, so nothing has applied version \d+ yet/)
  const noWait = await ctl.run(['tunnel', 'open', 'outbound', 'tcp/web2', '--agent', 'agent-c', '--target', '127.0.0.1:9', '--no-wait'])
  assert.equal(noWait.code, 0, noWait.stderr)
  assert.match(noWait.stdout, /stored as version \d+; not waiting for the agents/)
  const pending = (await ctl.run(['tunnel', 'list'])).stdout
  assert.match(pending, /tcp\/web2\s+none\s+agent-c → 127\.0\.0\.1:9 \(offline\)/)

  const warned = await ctl.run(['policy', 'create', 'typo', '--action', 'DENY', '--from', '@agnet-a', '--service', 'tcp/nothing'])
  assert.equal(warned.code, 0, warned.stderr)
  assert.match(warned.stderr, /Warning: policy typo: no identity named "agnet-a" exists/)
  assert.match(warned.stderr, /Warning: policy typo: no outbound tunnel serves tcp\/nothing/)
  assert.match(warned.stdout, /policy typo \(DENY\) created \(version \d+, applied by agent-a\)/)
  const shown = await ctl.run(['policy', 'show', 'typo', '-o', 'json'])
  assert.equal(shown.code, 0, shown.stderr)
  assert.equal(JSON.parse(shown.stdout).warnings.length, 2)
  assert.equal((await ctl.run(['policy', 'delete', 'typo'])).code, 0)
})

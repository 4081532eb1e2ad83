// The ZTM apps through a hub (root): node 1 runs the controller and a hub; node 2 an agent started with
// --no-listen and --hub behind a firewall that accepts nothing in; on node 3 a user runs `ztctl terminal
// open` and `ztctl file get`. They reach agent-b through the hub: the CLI asks the hub for a relay to it,
// and the inner HBONE session is TLS between the user's certificate and agent-b's (agent-b's log names
// alice as the app's identity, the hub's names her as the relay's source); one command's streams share one
// relay (one inner session). A policy denying alice is
// enforced at the hub already; node 2 listens on nothing.
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test, type TestContext} from 'node:test'

import {RUN_JS, startTestController} from '../helpers/controller.js'
import {createTopology, type TopoNode} from '../helpers/netns.js'
import {waitUntil} from '../inpod/fixtures.js'
import {daemon, dump, enrollAll, lockDown, ok, stop} from './helpers.js'

const TRUST_DOMAIN = 'cluster.local'
const HUB_PORT = 15_039
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

test('terminal and file get reach a zero-port agent through a hub, end-to-end TLS with the user\'s identity; hub policy applies', {timeout: 240_000}, async (t: TestContext) => {
  const topo = await createTopology(t, {nodes: 3, podsPerNode: 1})
  const [node1, node2, node3] = topo.nodes as [TopoNode, TopoNode, TopoNode]
  const dir = await mkdtemp(path.join(tmpdir(), 'ztctl-hub-apps-'))
  t.after(() => rm(dir, {force: true, recursive: true}))
  const ctl = await startTestController(t, {listenHost: node1.bridgeIp, netns: node1.netns})
  await enrollAll(ctl, dir, [['hub-1', 'hub'], ['agent-b', 'agent'], ['alice', '']])

  const hub = daemon(topo, node1.netns, ['hub', 'run', '-i', path.join(dir, 'hub-1.json'), '--listen', `0.0.0.0:${HUB_PORT}`, '--admin', '127.0.0.1:0',
    '--ready-file', path.join(dir, 'hub.ready'), '--log-level', 'info'])
  t.after(() => stop(hub, 'SIGKILL'))
  await waitUntil('the hub is ready', () => readFile(path.join(dir, 'hub.ready'), 'utf8').catch(() => undefined), 30_000).catch((error: Error) => assert.fail(`${error.message}: ${hub.output()}`))

  const socket = path.join(dir, 'b.sock')
  await lockDown(topo, node2)
  const agentB = daemon(topo, node2.netns, ['agent', 'run', '-i', path.join(dir, 'agent-b.json'), '--no-listen', '--hub', `${node1.bridgeIp}:${HUB_PORT}`,
    '--admin', `unix:${socket}`, '--log-level', 'info'])
  t.after(() => stop(agentB))
  await waitUntil('agent-b attached to the hub', async () => (await dump(socket).catch(() => undefined))?.hubs.some((attachment) => attachment.state === 'connected'), 30_000)
    .catch((error: Error) => assert.fail(`${error.message}: ${agentB.output()}`))

  const content = randomBytes(3 * 1024 * 1024)
  await writeFile(path.join(dir, 'report.bin'), content)
  await ok(ctl, ['terminal', 'config', '--agent', 'agent-b', '--add-user', '@alice'])
  await ok(ctl, ['file', 'config', '--agent', 'agent-b', '--add-user', '@alice'])
  await ok(ctl, ['file', 'publish', path.join(dir, 'report.bin'), '--agent', 'agent-b'])

  // The user's CLI on node 3, with her identity file (it names the controller).
  const asAlice = (args: string[], input = '') => topo.exec(node3.netns, 'env', [`ZTCTL_HOME=${path.join(dir, 'alice-home')}`, process.execPath, RUN_JS, ...args, '--identity', path.join(dir, 'alice.json')],
    {input, timeoutMs: 60_000})
  // The listing stats the file on agent-b: it works once agent-b hashed it and the controller knows its hub.
  await waitUntil('alice lists report.bin through the hub', async () => {
    const listed = await asAlice(['file', 'list'])
    return /report\.bin\s+agent-b\s+.*\sok/.test(listed.stdout) ? listed : undefined
  }, 30_000)

  // One command, one inner session: file get's streams (stat, then the transfer) share one relay through the hub.
  const hubRelays = () => hub.lines().filter((line) => line.message === 'connection complete' && line.direction === 'relay').length
  const settled = async (): Promise<number> => {
    let seen = -1
    const stable = await waitUntil('the hub logged every relay so far', async () => {
      const now = hubRelays()
      if (now === seen) return {count: now}
      seen = now
      await new Promise((resolve) => setTimeout(resolve, 1000))
      return undefined
    }, 20_000)
    return stable.count
  }

  const relaysBefore = await settled()
  // agent-b's own count of file streams served (a stat is one, quiet in its log).
  const fileStreams = async (): Promise<number> => {
    const {execFile} = await import('node:child_process')
    const metrics = await new Promise<string>((resolve, reject) => {
      execFile('curl', ['-s', '--max-time', '3', '--unix-socket', socket, 'http://agent/metrics'], (error, stdout) => (error ? reject(error) : resolve(stdout)))
    })
    return Number(/^ztctl_app_sessions_total\{app="file",outcome="ok"\} (\d+)$/m.exec(metrics)?.[1] ?? 0)
  }

  const streamsBefore = await fileStreams()
  const got = await asAlice(['file', 'get', 'report.bin', '--output', path.join(dir, 'got.bin'), '--json'])
  assert.equal(got.code, 0, got.stderr)
  assert.equal(sha256(await readFile(path.join(dir, 'got.bin'))), sha256(content), 'the file arrived intact')
  await waitUntil('the hub logs the relay of file get', () => hubRelays() > relaysBefore, 10_000)
  assert.equal(await settled() - relaysBefore, 1, 'file get went through one relay')
  const streams = (await fileStreams()) - streamsBefore
  assert.ok(streams >= 2, `file get opened ${streams} streams on agent-b`)

  const terminal = await asAlice(['terminal', 'open', 'agent-b'], 'echo "MARK-$((6 * 7))-$(hostname)"\nexit 3\n')
  assert.equal(terminal.code, 3, `the shell's exit status: ${terminal.stdout}\n${terminal.stderr}`)
  assert.match(terminal.stdout, /MARK-42-/)

  // Inner TLS end to end: agent-b saw alice's own certificate; the hub relayed alice's streams to agent-b.
  const sessions = agentB.lines().filter((line) => line.scope === 'app' && /session (started|ended)$/.test(String(line.message)))
  assert.deepEqual(new Set(sessions.map((line) => `${String(line.app)} ${String(line.spiffe)}`)),
    new Set([`file spiffe://${TRUST_DOMAIN}/identity/alice`, `terminal spiffe://${TRUST_DOMAIN}/identity/alice`]))
  const relays = await waitUntil('the hub logs the relays', () => {
    const lines = hub.lines().filter((line) => line.message === 'connection complete' && line.direction === 'relay')
    return lines.length >= 3 ? lines : undefined
  })
  for (const relay of relays) assert.deepEqual([relay['src.identity'], relay['dst.workload']], [`spiffe://${TRUST_DOMAIN}/identity/alice`, 'agent-b'])
  assert.deepEqual((await topo.execOk(node2.netns, 'ss', ['-Hltn'])).trim(), '', 'node 2 listens on nothing')

  // A policy denying alice everywhere: the hub refuses the relay already, in words.
  await ok(ctl, ['policy', 'create', 'no-alice', '--action', 'DENY', '--from', '@alice'])
  const refused = await waitUntil('the hub refuses alice', async () => {
    const result = await asAlice(['terminal', 'open', 'agent-b'], 'exit 0\n')
    return result.code === 0 ? undefined : result
  }, 20_000)
  assert.match(refused.stderr, /ZT_ERR_APP_DENIED[\s\S]*hub .* refused the relay/, refused.stderr)
  assert.ok(hub.lines().some((line) => line.direction === 'relay' && /relay refused/.test(String(line.error ?? line.message))), 'the hub logs the refusal')

  // No hub left: the directory names none, and the client says so before dialling anything.
  await stop(hub, 'SIGKILL')
  const unreachable = await waitUntil('the client finds no route', async () => {
    const result = await asAlice(['file', 'get', 'report.bin', '--output', path.join(dir, 'again.bin')])
    return /ZT_ERR_AGENT_UNREACHABLE/.test(result.stderr) ? result : undefined
  }, 20_000)
  assert.match(unreachable.stderr, /accepts no direct connection and is attached to no hub now/)
})

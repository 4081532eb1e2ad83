// `redirect add/remove` in real network namespaces: the exact rules (golden), idempotence, exact
// restore (also over pre-existing rules, and IPv6), the nft backend, the agent socket protocol against
// a real Unix socket server (including garbage), and the missing-tool error of the CLI.
import assert from 'node:assert/strict'
import {mkdtemp, readFile, rm, symlink} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'

import {ZtError} from '../../src/lib/errors.js'
import {InpodClient} from '../../src/lib/redirect/agent-client.js'
import {addRedirect, listRedirects, removeRedirect} from '../../src/lib/redirect/redirect.js'
import {normalizeIptablesSave, renderRuleSet} from '../../src/lib/redirect/rules.js'
import {RUN_JS, runCli} from '../helpers/controller.js'
import {createTopology, hasRoot, type Topology, type TopoPod} from '../helpers/netns.js'
import {startAgentServer} from './agent-server.js'

const GOLDEN = (name: string): Promise<string> => readFile(new URL(`testdata/${name}`, import.meta.url), 'utf8')

async function tempDir(t: {after(fn: () => Promise<void>): void}, prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix))
  t.after(() => rm(dir, {force: true, recursive: true}))
  return dir
}

async function firewallText(topo: Topology, pod: TopoPod, family: 4 | 6 = 4): Promise<string> {
  return normalizeIptablesSave(await topo.execOk(pod.netns, family === 6 ? 'ip6tables-save' : 'iptables-save'))
}

/** ip rules and routes of both families; link-local lines are left out (they appear asynchronously after DAD). */
async function routingText(topo: Topology, pod: TopoPod): Promise<string> {
  const parts: string[] = []
  for (const family of ['-4', '-6']) {
    parts.push(await topo.execOk(pod.netns, 'ip', [family, 'rule']), await topo.execOk(pod.netns, 'ip', [family, 'route', 'show', 'table', 'all']))
  }

  return parts.join('\n').split('\n').filter((line) => !line.includes('fe80')).join('\n')
}

test('the rule set text matches the golden (Istio REDIRECT mode with our chain names)', async () => {
  assert.equal(renderRuleSet(4, {dnsCapture: true}), await GOLDEN('ruleset-v4-dns.golden'))
})

test('redirect add installs exactly the golden rules (DNS capture by default), is idempotent, and remove restores the empty state', async (t) => {
  hasRoot()
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 1})
  const pod = topo.pods[0]!
  const stateDir = await tempDir(t, 'ztctl-state-')
  const before = await firewallText(topo, pod)
  const routingBefore = await routingText(topo, pod)
  const options = {agentSocket: path.join(stateDir, 'no-agent.sock'), netns: pod.netnsPath, serviceAccount: 'web', stateDir, workload: 'default/web-1'}

  const first = await addRedirect(options)
  assert.equal(first.changed, true)
  assert.deepEqual(first.ips, [pod.ip], 'IPs default to the namespace\'s global addresses')
  assert.equal(first.agent.reachable, false)
  assert.match(first.warnings[0]!, /not reachable.*pick the workload up/)
  const installed = await firewallText(topo, pod)
  assert.equal(installed, await GOLDEN('iptables-save-v4.golden'))
  assert.match(await topo.execOk(pod.netns, 'ip', ['rule']), /32764:\s+from all fwmark 0x111\/0xfff lookup 100/)
  assert.match(await topo.execOk(pod.netns, 'ip', ['route', 'show', 'table', '100']), /local default dev lo/)

  const second = await addRedirect(options)
  assert.equal(second.changed, false, 'a second add changes nothing')
  assert.equal(await firewallText(topo, pod), installed)

  const rows = await listRedirects({stateDir})
  assert.deepEqual(rows.map((row) => [row.namespace, row.name, row.serviceAccount, row.present]), [['default', 'web-1', 'web', true]])
  const cached = JSON.parse(await readFile(path.join(stateDir, 'default_web-1.json'), 'utf8')) as {add: {type: string}; before: {firewall: {iptables4: string}}}
  assert.equal(cached.add.type, 'add')
  assert.equal(cached.before.firewall.iptables4, before)

  const removed = await removeRedirect({agentSocket: options.agentSocket, stateDir, workload: 'default/web-1'})
  assert.equal(removed.restored, true)
  assert.equal(await firewallText(topo, pod), before, 'byte-for-byte the state before add')
  assert.equal(await routingText(topo, pod), routingBefore)
  assert.deepEqual(await listRedirects({stateDir}), [])
})

test('with DNS capture the raw and DNS rules are added; remove restores the namespace\'s own rules exactly', async (t) => {
  hasRoot()
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 1})
  const pod = topo.pods[0]!
  const stateDir = await tempDir(t, 'ztctl-state-')
  // The namespace's own rules in every table we touch, a user chain, and a filter rule.
  await topo.execOk(pod.netns, 'iptables', ['-t', 'nat', '-A', 'OUTPUT', '-d', '10.99.0.0/16', '-j', 'ACCEPT'])
  await topo.execOk(pod.netns, 'iptables', ['-t', 'mangle', '-N', 'MINE'])
  await topo.execOk(pod.netns, 'iptables', ['-t', 'mangle', '-A', 'PREROUTING', '-j', 'MINE'])
  await topo.execOk(pod.netns, 'iptables', ['-A', 'INPUT', '-p', 'tcp', '--dport', '9', '-j', 'DROP'])
  const before = await firewallText(topo, pod)
  const routingBefore = await routingText(topo, pod)
  const options = {agentSocket: path.join(stateDir, 'none.sock'), dnsCapture: true, pid: undefined, netns: pod.netnsPath, serviceAccount: 'api', stateDir, workload: 'shop/api-0'}
  await addRedirect(options)
  const installed = await firewallText(topo, pod)
  assert.match(installed, /-A ZTCTL_OUTPUT ! -o lo -p udp -m mark ! --mark 0x539\/0xfff -m udp --dport 53 -j REDIRECT --to-ports 15053/)
  assert.match(installed, /\*raw[\s\S]*-A ZTCTL_PRERT -p udp -m mark ! --mark 0x539\/0xfff -m udp --sport 53 -j CT --zone 1/)
  assert.match(installed, /-A OUTPUT -d 10\.99\.0\.0\/16 -j ACCEPT\n-A OUTPUT -j ZTCTL_OUTPUT/, 'our jump goes after the namespace\'s own rule')
  assert.equal((await addRedirect(options)).changed, false)

  const removed = await removeRedirect({agentSocket: options.agentSocket, netns: pod.netnsPath, stateDir})
  assert.equal(removed.restored, true)
  assert.equal(await firewallText(topo, pod), before)
  assert.equal(await routingText(topo, pod), routingBefore)
})

test('an IPv6 pod gets ip6tables rules and the ::/0 local route; remove restores both families', async (t) => {
  hasRoot()
  const topo = await createTopology(t, {ipv6: true, nodes: 1, podsPerNode: 1})
  const pod = topo.pods[0]!
  const stateDir = await tempDir(t, 'ztctl-state-')
  const before = [await firewallText(topo, pod, 4), await firewallText(topo, pod, 6)]
  const routingBefore = await routingText(topo, pod)
  const result = await addRedirect({agentSocket: path.join(stateDir, 'none.sock'), netns: pod.netnsPath, serviceAccount: 'web', stateDir, workload: 'default/v6'})
  assert.deepEqual(result.ips, [pod.ip, pod.ip6])
  const v6 = await firewallText(topo, pod, 6)
  assert.match(v6, /-A ZTCTL_OUTPUT ! -d ::1\/128 -p tcp -m mark ! --mark 0x539\/0xfff -j REDIRECT --to-ports 15001/)
  assert.match(await topo.execOk(pod.netns, 'ip', ['-6', 'route', 'show', 'table', '100']), /local default dev lo/)
  await removeRedirect({agentSocket: path.join(stateDir, 'none.sock'), stateDir, workload: 'default/v6'})
  assert.deepEqual([await firewallText(topo, pod, 4), await firewallText(topo, pod, 6)], before)
  assert.equal(await routingText(topo, pod), routingBefore)
})

test('nft backend: inet ztctl-* tables installed, idempotent, removed without a trace', async (t) => {
  hasRoot()
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 1})
  const pod = topo.pods[0]!
  const stateDir = await tempDir(t, 'ztctl-state-')
  const before = await topo.execOk(pod.netns, 'nft', ['list', 'ruleset'])
  const options = {agentSocket: path.join(stateDir, 'none.sock'), backend: 'nft' as const, netns: pod.netnsPath, serviceAccount: 'web', stateDir, workload: 'default/nft-1'}
  assert.equal((await addRedirect(options)).changed, true)
  const listed = await topo.execOk(pod.netns, 'nft', ['list', 'table', 'inet', 'ztctl-nat'])
  assert.match(listed, /ip daddr != 127\.0\.0\.1 meta l4proto tcp meta mark & 0x00000fff != 0x00000539 redirect to :15001/)
  assert.match(listed, /tcp dport != 15008 meta mark & 0x00000fff != 0x00000539 redirect to :15006/)
  assert.match(listed, /udp dport 53 .*redirect to :15053/, 'DNS capture by default')
  assert.match(await topo.execOk(pod.netns, 'nft', ['list', 'table', 'inet', 'ztctl-mangle']), /ct mark & 0x00000fff == 0x00000111 meta mark set ct mark/)
  assert.equal((await addRedirect(options)).changed, false)
  assert.equal((await removeRedirect({agentSocket: options.agentSocket, stateDir, workload: 'default/nft-1'})).restored, true)
  assert.equal(await topo.execOk(pod.netns, 'nft', ['list', 'ruleset']), before)
})

test('the agent is told: add and delete reach a real protocol server and are acknowledged', async (t) => {
  hasRoot()
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 1})
  const pod = topo.pods[0]!
  const stateDir = await tempDir(t, 'ztctl-state-')
  const agent = await startAgentServer(t)
  const result = await addRedirect({agentSocket: agent.socketPath, netns: pod.netnsPath, serviceAccount: 'web', stateDir, workload: 'default/told'})
  assert.equal(result.agent.reachable, true)
  assert.deepEqual(result.agent.ack, {type: 'ack', uid: 'default_told'})
  assert.deepEqual(result.warnings, [])
  assert.deepEqual(agent.requests, [{ips: [pod.ip], netns: pod.netnsPath, type: 'add', uid: 'default_told', workload: {name: 'told', namespace: 'default', serviceAccount: 'web'}}])
  await removeRedirect({agentSocket: agent.socketPath, stateDir, workload: 'default/told'})
  assert.deepEqual(agent.requests.at(-1), {type: 'delete', uid: 'default_told'})

  const refusing = await startAgentServer(t, {ackError: 'no certificate for sa web', kind: 'normal'})
  await assert.rejects(addRedirect({agentSocket: refusing.socketPath, netns: pod.netnsPath, serviceAccount: 'web', stateDir, workload: 'default/told'}), (error: unknown) => {
    assert.ok(ZtError.is(error))
    assert.equal(error.code, 'ZT_ERR_AGENT_REJECTED')
    assert.match(error.message, /no certificate for sa web/)
    return true
  })
  assert.equal((await listRedirects({stateDir})).length, 1, 'rules and cache stay: the agent picks it up later')
  await removeRedirect({agentSocket: refusing.socketPath, stateDir, workload: 'default/told'})
})

test('garbage from the agent is a clear protocol error, never a crash or a hang', async (t) => {
  const add = {ips: ['10.0.0.1'], netns: '/var/run/netns/x', type: 'add' as const, uid: 'a_b', workload: {name: 'b', namespace: 'a', serviceAccount: 's'}}
  const cases: {behaviour: Parameters<typeof startAgentServer>[1]; code: string; pattern: RegExp}[] = [
    {behaviour: {bytes: 'HTTP/1.1 400 Bad Request\r\n\r\n', kind: 'raw-hello'}, code: 'ZT_ERR_INPOD_PROTOCOL', pattern: /not a JSON object/},
    {behaviour: {bytes: '{"type":"hello","version":7}\n', kind: 'raw-hello'}, code: 'ZT_ERR_INPOD_PROTOCOL', pattern: /version 7/},
    {behaviour: {bytes: 'x'.repeat(70 * 1024), kind: 'raw-hello'}, code: 'ZT_ERR_INPOD_PROTOCOL', pattern: /exceeds 65536 bytes/},
    {behaviour: {bytes: '{"type":"hello","version":1}\n', kind: 'raw-ack'}, code: 'ZT_ERR_INPOD_PROTOCOL', pattern: /expected an ack/},
    {behaviour: {bytes: '{"type":"ack","uid":"someone-else"}\n', kind: 'raw-ack'}, code: 'ZT_ERR_INPOD_PROTOCOL', pattern: /someone-else/},
    {behaviour: {bytes: '[1,2,3]\n', kind: 'raw-ack'}, code: 'ZT_ERR_INPOD_PROTOCOL', pattern: /not a JSON object/},
    {behaviour: {kind: 'silent'}, code: 'ZT_ERR_AGENT_TIMEOUT', pattern: /did not send hello within 300 ms/},
  ]
  for (const {behaviour, code, pattern} of cases) {
    await t.test(`${behaviour!.kind}: ${code}`, async (st) => {
      const server = await startAgentServer(st, behaviour)
      await assert.rejects(async () => {
        const client = await InpodClient.connect(server.socketPath, {timeoutMs: 300})
        try {
          await client.request(add)
        } finally {
          client.close()
        }
      }, (error: unknown) => {
        assert.ok(ZtError.is(error), String(error))
        assert.equal(error.code, code)
        assert.match(error.message, pattern)
        return true
      })
    })
  }

  await t.test('no agent: ZT_ERR_AGENT_UNREACHABLE with exit 5', async () => {
    await assert.rejects(InpodClient.connect('/nonexistent/ztctl.sock', {timeoutMs: 300}), (error: unknown) => ZtError.is(error) && error.code === 'ZT_ERR_AGENT_UNREACHABLE' && error.exit === 5)
  })
})

test('a missing tool gives ZT_ERR_TOOL_MISSING naming the tool and its Debian package', async (t) => {
  hasRoot()
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 1})
  const pod = topo.pods[0]!
  const stateDir = await tempDir(t, 'ztctl-state-')
  // A PATH with nsenter and ip but no iptables or nft.
  const bin = await tempDir(t, 'ztctl-path-')
  for (const tool of ['nsenter', 'ip']) await symlink((await topo.execOk(pod.netns, 'sh', ['-c', `command -v ${tool}`])).trim(), path.join(bin, tool))
  const result = await runCli(['redirect', 'add', '--netns', pod.netnsPath, '--workload', 'default/x', '--service-account', 'x', '--state-dir', stateDir, '--json'], {...process.env, NO_COLOR: '1', PATH: bin})
  assert.equal(result.code, 1, result.stdout + result.stderr)
  const body = JSON.parse(result.stdout) as {error: {code: string; message: string; suggestion: string}}
  assert.equal(body.error.code, 'ZT_ERR_TOOL_MISSING')
  assert.match(body.error.message, /iptables-restore/)
  assert.equal(body.error.suggestion, 'install it: apt-get install iptables')
  assert.equal(await topo.execOk(pod.netns, 'iptables-save'), '', 'nothing was changed')
  assert.ok(RUN_JS)
})

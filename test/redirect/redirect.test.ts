// `redirect add/remove` in real network namespaces, on each back end named explicitly (iptables-legacy,
// iptables-nft with and without the `nft` binary, --backend nft): the exact rules (golden), idempotence,
// restore of an empty namespace and of one with rules in every table (IPv4 and IPv6), hand-made changes
// reported, the back end a namespace already uses, the agent socket protocol against a real Unix socket
// server (including garbage), and the missing-tool error of the CLI.
import assert from 'node:assert/strict'
import {mkdtemp, readFile, rm, symlink} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test, type TestContext} from 'node:test'

import {ZtError} from '../../src/lib/errors.js'
import {InpodClient} from '../../src/lib/redirect/agent-client.js'
import {addRedirect, listRedirects, removeRedirect} from '../../src/lib/redirect/redirect.js'
import {renderRuleSet} from '../../src/lib/redirect/rules.js'
import {RUN_JS, runCli} from '../helpers/controller.js'
import {IPTABLES_VARIANTS, iptablesOf, type IptablesVariant, otherVariant, savedText, tablesOf} from '../helpers/iptables.js'
import {createTopology, hasRoot, type Topology, type TopoPod} from '../helpers/netns.js'
import {pathWithout, requireTools} from '../helpers/tools.js'
import {startAgentServer} from './agent-server.js'

const GOLDEN = (name: string): Promise<string> => readFile(new URL(`testdata/${name}`, import.meta.url), 'utf8')

async function tempDir(t: {after(fn: () => Promise<void>): void}, prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix))
  t.after(() => rm(dir, {force: true, recursive: true}))
  return dir
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

for (const variant of IPTABLES_VARIANTS) {
  test(`iptables-${variant}: redirect add installs exactly the golden rules (DNS capture by default), is idempotent, and remove takes them all away`, async (t) => {
    hasRoot()
    const topo = await createTopology(t, {nodes: 1, podsPerNode: 1})
    const pod = topo.pods[0]!
    const stateDir = await tempDir(t, 'ztctl-state-')
    const before = await savedText(topo, pod.netns, variant)
    const routingBefore = await routingText(topo, pod)
    const options = {agentSocket: path.join(stateDir, 'no-agent.sock'), backend: `iptables-${variant}` as const, netns: pod.netnsPath, serviceAccount: 'web', stateDir, workload: 'default/web-1'}

    // --dry-run prints the rules it would install and changes nothing.
    const dry = await runCli(['redirect', 'add', '--netns', pod.netnsPath, '--workload', 'default/web-1', '--service-account', 'web', '--state-dir', stateDir,
      '--agent-socket', options.agentSocket, '--backend', `iptables-${variant}`, '--dry-run'], {...process.env, NO_COLOR: '1'})
    assert.equal(dry.code, 0, dry.stderr)
    assert.match(dry.stdout, /^dry run, nothing changed: workload default\/web-1 /)
    assert.ok(dry.stdout.includes(`-restore --noflush\n${(await GOLDEN('ruleset-v4-dns.golden')).trimEnd()}`), dry.stdout)
    assert.match(dry.stdout, /ip -4 rule add fwmark 0x111\/0xfff pref 32764 lookup 100/)
    assert.equal(await savedText(topo, pod.netns, variant), before, 'the dry run changed no rule')
    assert.deepEqual(await listRedirects({stateDir}), [], 'nor the state cache')

    const first = await addRedirect(options)
    assert.equal(first.changed, true)
    assert.equal(first.backend, `iptables-${variant}`)
    assert.deepEqual(first.ips, [pod.ip], 'IPs default to the namespace\'s global addresses')
    assert.equal(first.agent.reachable, false)
    assert.match(first.warnings[0]!, /not reachable.*pick the workload up/)
    const installed = await savedText(topo, pod.netns, variant)
    assert.deepEqual(tablesOf(installed), tablesOf(await GOLDEN('iptables-save-v4.golden')))
    assert.doesNotMatch(await savedText(topo, pod.netns, otherVariant(variant)), /ZTCTL/, 'nothing written with the other iptables')
    assert.match(await topo.execOk(pod.netns, 'ip', ['rule']), /32764:\s+from all fwmark 0x111\/0xfff lookup 100/)
    assert.match(await topo.execOk(pod.netns, 'ip', ['route', 'show', 'table', '100']), /local default dev lo/)

    const second = await addRedirect({...options, backend: undefined})
    assert.equal(second.changed, false, 'a second add changes nothing (and keeps to the back end of the first)')
    assert.equal(second.backend, `iptables-${variant}`)
    assert.equal(await savedText(topo, pod.netns, variant), installed)

    const rows = await listRedirects({stateDir})
    assert.deepEqual(rows.map((row) => [row.namespace, row.name, row.serviceAccount, row.backend, row.present]), [['default', 'web-1', 'web', `iptables-${variant}`, true]])
    const cached = JSON.parse(await readFile(path.join(stateDir, 'default_web-1.json'), 'utf8')) as {add: {type: string}; before: {firewall: {iptables4: string}}}
    assert.equal(cached.add.type, 'add')
    assert.equal(cached.before.firewall.iptables4, before)

    const removed = await removeRedirect({agentSocket: options.agentSocket, stateDir, workload: 'default/web-1'})
    assert.equal(removed.restored, true)
    assert.doesNotMatch(await savedText(topo, pod.netns, variant), /ZTCTL|0x539|0x111/)
    assert.equal(await routingText(topo, pod), routingBefore)
    assert.deepEqual(await listRedirects({stateDir}), [])
  })
}

interface BackendCase {
  label: string
  backend: 'iptables-legacy' | 'iptables-nft' | 'nft'
  /** the iptables variant (none: our own nft tables) */
  variant?: IptablesVariant
  /** run the CLI with a PATH on which `nft` is not found */
  withoutNft?: boolean
}

const CASES: BackendCase[] = [
  {backend: 'iptables-legacy', label: 'iptables-legacy', variant: 'legacy'},
  {backend: 'iptables-nft', label: 'iptables-nft', variant: 'nft'},
  {backend: 'iptables-nft', label: 'iptables-nft without the nft binary', variant: 'nft', withoutNft: true},
  {backend: 'nft', label: '--backend nft'},
]

/** A dual-stack pod and `ztctl redirect add|remove --json` on it with the case's back end (and PATH). */
async function redirectHarness(t: TestContext, c: BackendCase) {
  hasRoot()
  requireTools('nft', ...(c.variant ? [iptablesOf(c.variant, 4), iptablesOf(c.variant, 6)] : []))
  const topo = await createTopology(t, {ipv6: true, nodes: 1, podsPerNode: 1})
  const pod = topo.pods[0]!
  const stateDir = await tempDir(t, 'ztctl-state-')
  const env = {...process.env, NO_COLOR: '1', PATH: c.withoutNft ? pathWithout(t, 'nft') : process.env.PATH}
  const cli = async (args: string[]) => {
    const agent = args[0] === 'list' ? [] : ['--agent-socket', path.join(stateDir, 'none.sock')]
    const result = await runCli(['redirect', ...args, '--state-dir', stateDir, ...agent, '--json'], env)
    return {...result, body: JSON.parse(result.stdout || '{}') as Record<string, unknown> & {error?: {code: string; details?: {differences?: string[]}; message: string}}}
  }

  /** What the back end shows: the variant's save of both families, or `nft list ruleset` (counters aside: traffic moves them). */
  const views = async (): Promise<Record<string, string>> => c.variant
    ? {IPv4: await savedText(topo, pod.netns, c.variant, 4), IPv6: await savedText(topo, pod.netns, c.variant, 6)}
    : {nft: await topo.execOk(pod.netns, 'nft', ['-s', 'list', 'ruleset'])}
  const ours = async (): Promise<string> => [...Object.values(await views()), ...(await Promise.all(IPTABLES_VARIANTS.map((variant) => savedText(topo, pod.netns, variant))))].join('\n')
  const add = async () => {
    const result = await cli(['add', '--netns', pod.netnsPath, '--workload', 'default/web', '--service-account', 'web', '--backend', c.backend])
    assert.equal(result.code, 0, result.stdout + result.stderr)
    assert.equal(result.body.backend, c.backend)
    assert.match(await ours(), /ZTCTL_OUTPUT|ztctl-nat/, 'our rules are in')
  }

  return {add, cli, ours, pod, remove: () => cli(['remove', '--netns', pod.netnsPath]), topo, views}
}

/** The namespace's own rules in every table, both families (for nft: iptables-nft's tables plus a table of its own). */
async function addOwnRules(topo: Topology, netns: string, c: BackendCase): Promise<void> {
  const variant = c.variant ?? 'nft'
  for (const family of [4, 6] as const) {
    const iptables = (...args: string[]) => topo.execOk(netns, iptablesOf(variant, family), args)
    await iptables('-A', 'INPUT', '-p', 'tcp', '--dport', '9', '-j', 'DROP')
    await iptables('-P', 'FORWARD', 'DROP')
    await iptables('-t', 'nat', '-A', 'OUTPUT', '-d', family === 6 ? 'fd99::/16' : '10.99.0.0/16', '-j', 'ACCEPT')
    await iptables('-t', 'mangle', '-N', 'MINE')
    await iptables('-t', 'mangle', '-A', 'MINE', '-j', 'MARK', '--set-mark', '7')
    await iptables('-t', 'mangle', '-A', 'PREROUTING', '-j', 'MINE')
    await iptables('-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', '5353', '-j', 'ACCEPT')
    await iptables('-t', 'security', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '25', '-j', 'ACCEPT')
  }

  if (!c.variant) await topo.execOk(netns, 'nft', ['-f', '-'], {input: 'table inet mine {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 9 drop\n\t}\n}\n'})
}

for (const c of CASES) {
  test(`${c.label}: add → remove on an empty namespace (IPv4 and IPv6) restores it; only tables the back end cannot delete stay, empty`, async (t) => {
    const h = await redirectHarness(t, c)
    const before = await h.views()
    const others = await Promise.all(IPTABLES_VARIANTS.filter((variant) => variant !== c.variant).map((variant) => savedText(h.topo, h.pod.netns, variant)))
    await h.add()
    const removed = await h.remove()
    assert.equal(removed.code, 0, removed.stdout + removed.stderr)
    assert.equal(removed.body.restored, true)
    const after = await h.views()
    const kept = removed.body.kept as string[]
    if (c.variant === 'legacy' || c.withoutNft) {
      const why = c.variant === 'legacy' ? 'iptables-legacy cannot delete a table' : 'deleting it needs `nft` (Debian package nftables)'
      for (const family of ['IPv4', 'IPv6']) {
        const [was, is] = [tablesOf(before[family]!), tablesOf(after[family]!)]
        for (const [table, text] of was) assert.equal(is.get(table), text, `${family} ${table} as before`)
        const extra = [...is.keys()].filter((table) => !was.has(table))
        for (const table of extra) assert.match(is.get(table)!, /^\*\w+(\n:[A-Z]+ ACCEPT \[0:0\])+\nCOMMIT$/, `${family} ${table}: only empty built-in chains`)
        assert.deepEqual(extra.sort(), ['mangle', 'nat', 'raw'], `${family}: the tables add brought into being stay, empty`)
        assert.deepEqual(kept.filter((note) => note.includes(`(${family})`)).sort(), extra.map((table) => `the empty ${table} table (${family}) stays: ${why}; it changes nothing`))
      }
    } else {
      assert.deepEqual(after, before, 'exactly the text of before')
      assert.deepEqual(kept, [])
    }

    assert.deepEqual(await Promise.all(IPTABLES_VARIANTS.filter((variant) => variant !== c.variant).map((variant) => savedText(h.topo, h.pod.netns, variant))), others, 'the other iptables untouched')
  })

  test(`${c.label}: add → remove over the namespace's own rules in every table (IPv4 and IPv6) restores them exactly`, async (t) => {
    const h = await redirectHarness(t, c)
    await addOwnRules(h.topo, h.pod.netns, c)
    const before = await h.views()
    await h.add()
    const installed = await h.views()
    if (c.variant) assert.match(installed.IPv4!, /-A OUTPUT -d 10\.99\.0\.0\/16 -j ACCEPT\n-A OUTPUT -j ZTCTL_OUTPUT/, 'our jump goes after the namespace\'s own rule')
    const removed = await h.remove()
    assert.equal(removed.code, 0, removed.stdout + removed.stderr)
    assert.deepEqual(removed.body.kept, [])
    assert.deepEqual(await h.views(), before)
  })

  test(`${c.label}: rules changed by hand while redirected are reported by remove, ours are gone anyway`, async (t) => {
    const h = await redirectHarness(t, c)
    await addOwnRules(h.topo, h.pod.netns, c)
    await h.add()
    const tool = iptablesOf(c.variant ?? 'nft', 4)
    await h.topo.execOk(h.pod.netns, tool, ['-D', 'INPUT', '-p', 'tcp', '--dport', '9', '-j', 'DROP'])
    if (c.variant) await h.topo.execOk(h.pod.netns, iptablesOf(c.variant, 6), ['-A', 'INPUT', '-p', 'tcp', '--dport', '7', '-j', 'DROP'])
    else await h.topo.execOk(h.pod.netns, 'nft', ['add', 'rule', 'inet', 'mine', 'input', 'tcp', 'dport', '7', 'drop'])
    const removed = await h.remove()
    assert.equal(removed.code, 1, removed.stdout + removed.stderr)
    assert.equal(removed.body.error?.code, 'ZT_ERR_RESTORE_MISMATCH')
    const differences = removed.body.error?.details?.differences ?? []
    if (c.variant) {
      assert.deepEqual(differences, [
        `iptables-${c.variant} IPv4: gone since add: -t filter -A INPUT -p tcp -m tcp --dport 9 -j DROP`,
        `iptables-${c.variant} IPv6: new since add: -t filter -A INPUT -p tcp -m tcp --dport 7 -j DROP`,
      ])
    } else {
      assert.equal(differences.length, 2, differences.join('\n'))
      assert.match(differences[0]!, /^nft: gone since add: table ip filter chain INPUT: .*tcp dport 9 .*drop$/)
      assert.equal(differences[1], 'nft: new since add: table inet mine chain input: tcp dport 7 drop')
    }

    assert.match(removed.body.error!.message, /firewall differs from before `redirect add`/)
    assert.doesNotMatch(await h.ours(), /ZTCTL|ztctl-/, 'our rules are removed all the same')
    assert.deepEqual((await h.cli(['list'])).body, [], 'and the record')
  })
}

test('without --backend: the iptables the namespace\'s rules are written with, whatever the machine\'s `iptables` is; another back end on a redirected namespace is a conflict', async (t) => {
  hasRoot()
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 2})
  const stateDir = await tempDir(t, 'ztctl-state-')
  const options = {agentSocket: path.join(stateDir, 'none.sock'), serviceAccount: 'web', stateDir}
  for (const [index, variant] of IPTABLES_VARIANTS.entries()) {
    const pod = topo.pods[index]!
    await topo.execOk(pod.netns, iptablesOf(variant), ['-A', 'INPUT', '-p', 'tcp', '--dport', '9', '-j', 'DROP'])
    const added = await addRedirect({...options, netns: pod.netnsPath, workload: `default/p${index}`})
    assert.equal(added.backend, `iptables-${variant}`)
    assert.match(await savedText(topo, pod.netns, variant), /ZTCTL_OUTPUT/)
    await assert.rejects(addRedirect({...options, backend: `iptables-${otherVariant(variant)}`, netns: pod.netnsPath, workload: `default/p${index}`}), (error: unknown) => {
      assert.ok(ZtError.is(error))
      assert.equal(error.code, 'ZT_ERR_CONFLICT')
      assert.equal(error.exit, 6)
      assert.match(error.message, new RegExp(`redirected with iptables-${variant}; rules of a second back end \\(iptables-${otherVariant(variant)}\\)`))
      return true
    })
    assert.equal((await removeRedirect({...options, workload: `default/p${index}`})).restored, true)
  }
})

test('nft backend: inet ztctl-* tables installed, idempotent, removed without a trace', async (t) => {
  hasRoot()
  requireTools('nft')
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
  for (const variant of IPTABLES_VARIANTS) assert.equal(await savedText(topo, pod.netns, variant), '', `nothing was changed (iptables-${variant})`)
  assert.ok(RUN_JS)
})

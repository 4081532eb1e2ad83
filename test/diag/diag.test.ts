// `diag redirect` on a real redirected namespace, on each iptables variant named explicitly: healthy when
// everything is there (exit 0), and each rule, ip rule, route, listener or the agent socket taken away by
// hand, and each rule written with the other iptables, is flagged on its own, in words, with a fix that works
// (exit 1). Plus the raw views (both variants side by side).
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'

import {diagnoseRedirect} from '../../src/lib/diag/redirect.js'
import {addRedirect} from '../../src/lib/redirect/redirect.js'
import {expectedRules, PORTS, renderRuleSet} from '../../src/lib/redirect/rules.js'
import {runCli} from '../helpers/controller.js'
import {IPTABLES_VARIANTS, iptablesOf, otherVariant} from '../helpers/iptables.js'
import {createTopology, hasRoot, type Topology} from '../helpers/netns.js'
import {requireTools} from '../helpers/tools.js'
import {startAgentServer} from '../redirect/agent-server.js'

async function waitForListeners(topo: Topology, netns: string, ports: number[], protocol: 'tcp' | 'udp' = 'tcp'): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const listening = await topo.execOk(netns, 'ss', [protocol === 'tcp' ? '-Hntl' : '-Hnul'])
    if (ports.every((port) => listening.includes(`:${port} `))) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }

  throw new Error(`listeners ${ports.join(', ')} did not come up in ${netns}`)
}

for (const variant of IPTABLES_VARIANTS) {
  test(`iptables-${variant}: diag redirect: healthy namespace passes; each deleted rule, route or listener, and each rule of the other iptables, is flagged with a working fix`, async (t) => {
    hasRoot()
    requireTools('socat', iptablesOf(variant), iptablesOf(otherVariant(variant)))
    const other = otherVariant(variant)
    const topo = await createTopology(t, {nodes: 1, podsPerNode: 1})
    const pod = topo.pods[0]!
    const stateDir = await mkdtemp(path.join(tmpdir(), 'ztctl-state-'))
    t.after(() => rm(stateDir, {force: true, recursive: true}))
    const agent = await startAgentServer(t)
    // The agent's listeners in the pod netns (the real agent is engineer B's; diag only looks at sockets).
    const listenerPorts = [PORTS.outbound, PORTS.inbound, PORTS.hbone]
    const listeners = new Map(listenerPorts.map((port) => [port, topo.spawn(pod.netns, 'socat', [`TCP-LISTEN:${port},reuseaddr,fork`, 'SYSTEM:true'])]))
    // DNS capture is on by default, so the DNS listener (UDP and TCP 15053) is expected too.
    topo.spawn(pod.netns, 'socat', [`TCP-LISTEN:${PORTS.dns},reuseaddr,fork`, 'SYSTEM:true'])
    topo.spawn(pod.netns, 'socat', [`UDP-LISTEN:${PORTS.dns},reuseaddr,fork`, 'SYSTEM:true'])
    await waitForListeners(topo, pod.netns, [...listenerPorts, PORTS.dns])
    await waitForListeners(topo, pod.netns, [PORTS.dns], 'udp')
    const addOptions = {agentSocket: agent.socketPath, backend: `iptables-${variant}` as const, netns: pod.netnsPath, serviceAccount: 'web', stateDir, workload: 'default/web-1'}
    await addRedirect(addOptions)
    const diagnose = () => diagnoseRedirect({agentSocket: agent.socketPath, netns: pod.netnsPath, stateDir})
    const failing = async (): Promise<{fix?: string; id: string; message: string}[]> => (await diagnose()).checks.filter((check) => !check.ok)
    const cli = (args: string[]) => runCli(['diag', 'redirect', ...args, '--state-dir', stateDir, '--agent-socket', agent.socketPath, '--json'], {...process.env, NO_COLOR: '1'})

    await t.test('healthy: every check passes, exit 0', async () => {
      const diagnosis = await diagnose()
      assert.deepEqual(diagnosis.checks.filter((check) => !check.ok), [])
      assert.equal(diagnosis.healthy, true)
      assert.deepEqual(diagnosis.workload, {name: 'web-1', namespace: 'default', serviceAccount: 'web', uid: 'default_web-1'})
      assert.equal(diagnosis.backend, `iptables-${variant}`)
      assert.equal(diagnosis.checks.find((check) => check.id === 'firewall/backend')?.message, `the redirect rules are written with iptables-${variant} (recorded by \`redirect add\`)`)
      const result = await cli(['--netns', pod.netnsPath])
      assert.equal(result.code, 0, result.stderr)
      assert.equal((JSON.parse(result.stdout) as {healthy: boolean}).healthy, true)
      const byWorkload = await cli(['default/web-1'])
      assert.equal(byWorkload.code, 0, byWorkload.stderr)
    })

    for (const rule of expectedRules(4, {dnsCapture: true})) {
      await t.test(`deleting ${rule.table} ${rule.chain} \`${rule.spec}\` is flagged as ${rule.id}`, async () => {
        await topo.execOk(pod.netns, iptablesOf(variant), ['-t', rule.table, '-D', rule.chain, ...rule.spec.split(' ')])
        const problems = await failing()
        assert.deepEqual(problems.map((problem) => problem.id), [`iptables4/${rule.id}`])
        assert.equal(problems[0]!.message, `${rule.what} missing (IPv4): ${rule.impact}`)
        assert.equal(problems[0]!.fix, `ztctl redirect add --netns ${pod.netnsPath} --workload default/web-1 --service-account web --state-dir ${stateDir} --agent-socket ${agent.socketPath}`)
        // The fix (an idempotent add) repairs exactly that.
        assert.equal((await addRedirect(addOptions)).changed, true)
        assert.deepEqual(await failing(), [])
      })
    }

    await t.test('the sentence for the outbound redirect says what breaks', async () => {
      await topo.execOk(pod.netns, iptablesOf(variant), ['-t', 'nat', '-F', 'ZTCTL_OUTPUT'])
      const result = await cli(['--netns', pod.netnsPath])
      assert.equal(result.code, 1)
      const messages = (JSON.parse(result.stdout) as {checks: {message: string; ok: boolean}[]}).checks.filter((check) => !check.ok).map((check) => check.message)
      assert.ok(messages.includes('outbound REDIRECT to 15001 missing (IPv4): traffic will bypass the mesh'), messages.join('\n'))
      await addRedirect(addOptions)
    })

    await t.test('an extra rule in our chain is flagged, and its fix command removes it', async () => {
      await topo.execOk(pod.netns, iptablesOf(variant), ['-t', 'nat', '-I', 'ZTCTL_OUTPUT', '1', '-p', 'tcp', '--dport', '25', '-j', 'ACCEPT'])
      const problems = await failing()
      assert.equal(problems.length, 1)
      assert.match(problems[0]!.message, /unexpected rule in nat ZTCTL_OUTPUT \(IPv4\): `-p tcp -m tcp --dport 25 -j ACCEPT`/)
      const [command, ...args] = problems[0]!.fix!.split(' ')
      const fixed = await topo.exec(pod.netns, command!, args) // nsenter into the same netns: harmless
      assert.equal(fixed.code, 0, fixed.stderr)
      assert.deepEqual(await failing(), [])
    })

    for (const [what, args, id] of [
      ['ip rule', ['rule', 'del', 'fwmark', '0x111/0xfff', 'pref', '32764', 'lookup', '100'], 'routing4/rule'],
      ['table-100 route', ['route', 'del', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '100'], 'routing4/route'],
    ] as const) {
      await t.test(`deleting the ${what} is flagged as ${id}, and its fix restores it`, async () => {
        await topo.execOk(pod.netns, 'ip', [...args])
        const problems = await failing()
        assert.deepEqual(problems.map((problem) => problem.id), [id])
        const [command, ...fixArgs] = problems[0]!.fix!.split(' ')
        assert.equal((await topo.exec(pod.netns, command!, fixArgs)).code, 0)
        assert.deepEqual(await failing(), [])
      })
    }

    await t.test(`a rule written with iptables-${other} is flagged, naming both back ends, and the command of its fix removes it`, async () => {
      await topo.execOk(pod.netns, iptablesOf(other), ['-A', 'INPUT', '-p', 'tcp', '--dport', '9', '-j', 'DROP'])
      const problems = await failing()
      assert.deepEqual(problems.map((problem) => problem.id), [`firewall/other-backend/iptables-${other}4`])
      assert.equal(problems[0]!.message, `1 rule(s) written with iptables-${other} (IPv4) beside this namespace's iptables-${variant} rules, e.g. \`-t filter -A INPUT -p tcp -m tcp --dport 9 -j DROP\`: both act on every packet, but \`iptables-${variant}-save\` does not show them`)
      assert.match(problems[0]!.fix!, new RegExp(`^use one back end: re-create the rules you need with iptables-${variant}, then delete them from iptables-${other}`))
      const example = /`(nsenter [^`]+)`/.exec(problems[0]!.fix!)![1]!
      assert.equal(example, `nsenter --net=${pod.netnsPath} -- ${iptablesOf(other)} -t filter -D INPUT -p tcp -m tcp --dport 9 -j DROP`)
      const [command, ...args] = example.split(' ')
      assert.equal((await topo.exec(pod.netns, command!, args)).code, 0)
      assert.deepEqual(await failing(), [])
    })

    await t.test(`ztctl's own chains left in iptables-${other} are flagged: traffic would be redirected twice`, async () => {
      await topo.execOk(pod.netns, `${iptablesOf(other)}-restore`, ['--noflush'], {input: renderRuleSet(4, {dnsCapture: true})})
      const problems = await failing()
      assert.deepEqual(problems.map((problem) => problem.id), [`firewall/other-backend/iptables-${other}4`])
      assert.match(problems[0]!.message, /ztctl's own chains are among them \(left by a redirect made with iptables-\w+\), so traffic is redirected twice$/)
      assert.match(problems[0]!.fix!, new RegExp(`^delete ztctl's rules from iptables-${other}: each jump to ZTCTL_OUTPUT/ZTCTL_PRERT`))
      await topo.execOk(pod.netns, `${iptablesOf(other)}-restore`, [], {input: '*mangle\nCOMMIT\n*nat\nCOMMIT\n*raw\nCOMMIT\n'})
      assert.deepEqual(await failing(), [])
    })

    await t.test('without a record, the back end is the one the namespace\'s rules are written with', async () => {
      const noRecords = await mkdtemp(path.join(tmpdir(), 'ztctl-state-'))
      t.after(() => rm(noRecords, {force: true, recursive: true}))
      const diagnosis = await diagnoseRedirect({agentSocket: agent.socketPath, netns: pod.netnsPath, stateDir: noRecords})
      assert.equal(diagnosis.backend, `iptables-${variant}`)
      assert.equal(diagnosis.checks.find((check) => check.id === 'firewall/backend')?.message, `the redirect rules are written with iptables-${variant} (the namespace's rules are written with it)`)
      assert.deepEqual(diagnosis.checks.filter((check) => !check.ok).map((check) => check.id), ['cache/record'])
    })

    await t.test('a missing listener is flagged with what breaks', async () => {
      const outbound = listeners.get(PORTS.outbound)!
      const exited = new Promise((resolve) => outbound.once('exit', resolve))
      outbound.kill('SIGKILL')
      await exited
      const problems = await failing()
      assert.deepEqual(problems.map((problem) => problem.id), ['listener/15001'])
      assert.equal(problems[0]!.message, 'no outbound listener on 15001/tcp: redirected outbound connections will be refused')
    })

    await t.test('an unreachable agent socket is flagged', async () => {
      await agent.close()
      const problems = await failing()
      assert.ok(problems.some((problem) => problem.id === 'agent/socket' && /not reachable/.test(problem.message) && problem.fix?.includes('ztctl agent run --inpod-socket')))
    })
  })
}

test('raw views: diag iptables, listeners and routes show the namespace from inside', async (t) => {
  hasRoot()
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 1})
  const pod = topo.pods[0]!
  requireTools('socat', 'iptables-legacy', 'iptables-nft')
  await topo.execOk(pod.netns, 'iptables-nft', ['-t', 'nat', '-A', 'OUTPUT', '-d', '10.77.0.0/16', '-j', 'ACCEPT'])
  await topo.execOk(pod.netns, 'iptables-legacy', ['-A', 'INPUT', '-s', '10.78.0.0/16', '-j', 'DROP'])
  topo.spawn(pod.netns, 'socat', ['TCP-LISTEN:7777,reuseaddr,fork', 'SYSTEM:true'])
  await waitForListeners(topo, pod.netns, [7777])
  const env = {...process.env, NO_COLOR: '1'}
  const iptables = await runCli(['diag', 'iptables', '--netns', pod.netnsPath], env)
  assert.equal(iptables.code, 0, iptables.stderr)
  assert.match(iptables.stdout, /# iptables-legacy-save \(IPv4, iptables-legacy\)\n[^]*-A INPUT -s 10\.78\.0\.0\/16 -j DROP/)
  assert.match(iptables.stdout, /# iptables-nft-save \(IPv4, iptables-nft\)\n[^]*-A OUTPUT -d 10\.77\.0\.0\/16 -j ACCEPT/)
  const listeners = await runCli(['diag', 'listeners', '--netns', pod.netnsPath, '--json'], env)
  assert.equal(listeners.code, 0, listeners.stderr)
  const view = JSON.parse(listeners.stdout) as {listeners: {port: number; process?: string; protocol: string}[]}
  assert.ok(view.listeners.some((listener) => listener.port === 7777 && listener.protocol === 'tcp' && listener.process?.startsWith('socat/')))
  const routes = await runCli(['diag', 'routes', '--netns', pod.netnsPath], env)
  assert.equal(routes.code, 0, routes.stderr)
  assert.match(routes.stdout, new RegExp(`default via ${pod.gateway.replaceAll('.', '\\.')} dev eth0`))
  const missing = await runCli(['diag', 'routes', '--netns', '/var/run/netns/does-not-exist-ztctl'], env)
  assert.equal(missing.code, 3)
  assert.match(missing.stderr, /ZT_ERR_NETNS_NOT_FOUND/)
})

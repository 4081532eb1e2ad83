// `policy explain` against the agents' real behaviour: the same configuration goes to a real hosting agent
// (real mTLS, real connections through a real inbound tunnel) and to explain(); the verdicts must agree,
// down to the reason. Then the CLI end to end against a real controller.
import assert from 'node:assert/strict'
import {test} from 'node:test'

import type {ConfigSnapshot, Policy} from '../../src/lib/config/types.js'
import {explain} from '../../src/lib/mesh/explain.js'
import {startTestController} from '../helpers/controller.js'
import {echoTunnel, roundTrip, TRUST_DOMAIN, tunnelConfig, waitFor} from '../proxy/helpers.js'

const policy = (name: string, action: Policy['action'], fields: Partial<Policy> = {}): Policy => ({action, from: [], name, ports: [], services: [], sourceCidrs: [], ...fields})

/** What the hosting agent did: the connection carried data, or it was refused with the log's reason. */
async function observe(listen: string, logs: Record<string, unknown>[]): Promise<{allowed: boolean; error?: string}> {
  const before = logs.length
  const echoed = await roundTrip(listen, Buffer.from('ping')).catch(() => Buffer.alloc(0))
  if (echoed.toString() === 'ping') return {allowed: true}
  const line = await waitFor('the refusal in the hosting agent\'s log', () =>
    logs.slice(before).find((entry) => entry.message === 'connection complete' && typeof entry.error === 'string'))
  return {allowed: false, error: line.error as string}
}

test('explain and a real hosting agent decide alike: DENY first, then ALLOW, then the default', async (t) => {
  const {client, clientAgent, echo, listen, server, serverAgent, targets} = await echoTunnel(t)
  const base = tunnelConfig({client, clientHbone: clientAgent.agent.addresses.hbone, server, serverHbone: serverAgent.agent.addresses.hbone, targets})
  base.identity['agent-a'].roles = ['frontend']
  const otherPort = echo.port === 65_535 ? 1 : echo.port + 1

  const cases: {change: (config: ConfigSnapshot) => void; expect: RegExp; name: string}[] = [
    {change: () => {}, expect: /^ALLOWED: no DENY matches/, name: 'no policies'},
    {change: (c) => (c.policy.d = policy('d', 'DENY', {from: ['#frontend']})), expect: /^DENIED by policy "d"$/, name: 'DENY by role'},
    {change: (c) => (c.policy.d = policy('d', 'DENY', {from: ['#backend']})), expect: /^ALLOWED: no DENY/, name: 'DENY for another role'},
    {change: (c) => (c.policy.a = policy('a', 'ALLOW', {from: ['@agent-a'], ports: [otherPort]})), expect: /^DENIED: no ALLOW policy matches/, name: 'ALLOW on another port'},
    {change: (c) => (c.policy.a = policy('a', 'ALLOW', {ports: [echo.port]})), expect: /^ALLOWED by policy "a"$/, name: 'ALLOW on this port'},
    {change: (c) => (c.outbound['tcp/echo@agent-b'].allow = ['#backend']), expect: /^DENIED: identity "agent-a" is not in the allow list/, name: 'tunnel allow list'},
    {change: (c) => (c.policy.a = policy('a', 'ALLOW', {from: ['#nobody'], services: ['tcp/other']})), expect: /^ALLOWED: no DENY/, name: 'ALLOW scoped to another service'},
    {change: (c) => (c.policy.c = policy('c', 'DENY', {sourceCidrs: ['127.0.0.0/8']})), expect: /^DENIED by policy "c"$/, name: 'DENY by source CIDR'},
    {change: (c) => (c.policy.c = policy('c', 'DENY', {sourceCidrs: ['10.0.0.0/8']})), expect: /^ALLOWED: no DENY/, name: 'DENY for another CIDR'},
    {
      change: (c) => {
        c.policy['a-allow'] = policy('a-allow', 'ALLOW', {from: ['@agent-a']})
        c.policy['z-deny'] = policy('z-deny', 'DENY', {ports: [echo.port]})
      },
      expect: /^DENIED by policy "z-deny"$/,
      name: 'a matching DENY wins over an earlier matching ALLOW',
    },
  ]

  let version = 1
  for (const {change, expect, name} of cases) {
    const config = structuredClone(base)
    change(config)
    version++
    await serverAgent.writeConfig({version, resources: config} as unknown as ConfigSnapshot)
    await waitFor(`${name}: config version ${version} applied`, () => serverAgent.agent.configDump().version === version)

    const explained = explain({...config, trustDomain: TRUST_DOMAIN}, {from: '@agent-a', to: `tcp/echo:${echo.port}`})
    assert.equal(explained.verdicts.length, 1, name)
    const [verdict] = explained.verdicts
    assert.equal(verdict.agent, 'agent-b', name)
    assert.match(verdict.summary, expect, name)
    assert.equal(explained.source.address, '127.0.0.1', `${name}: the source agent's HBONE address is assumed`)

    const observed = await observe(listen, serverAgent.logs)
    assert.equal(observed.allowed, verdict.decision.allowed, `${name}: the agent ${observed.allowed ? 'allowed' : `refused (${observed.error})`}, explain said ${verdict.summary}`)
    if (!verdict.decision.allowed) assert.ok(observed.error?.endsWith(verdict.decision.reason), `${name}: agent said "${observed.error}", explain "${verdict.decision.reason}"`)
    const deciding = verdict.steps.at(-1)
    if (verdict.decision.policy) assert.match(deciding?.text ?? '', new RegExp(`"${verdict.decision.policy}" matches$`), `${name}: the last step names the deciding policy`)
  }
})

test('explain traces every check in order and words each mismatch', () => {
  const config = {
    agent: {}, identity: {web: {name: 'web', roles: ['frontend'], spiffe: 'spiffe://td/identity/web'}},
    outbound: {'tcp/db@db-1': {agent: 'db-1', allow: [], service: 'tcp/db', targets: [{host: '10.0.0.9', port: 5432}, {host: '10.0.0.9', port: 5433}]}},
    policy: {
      'a-ports': policy('a-ports', 'ALLOW', {ports: [5433]}),
      'b-admins': policy('b-admins', 'DENY', {from: ['#admin']}),
      'c-web': policy('c-web', 'ALLOW', {services: ['tcp/web']}),
    },
    trustDomain: 'td',
  }
  const result = explain(config, {from: '@web', sourceIp: '10.1.1.1', to: 'tcp/db'})
  assert.deepEqual(result.verdicts.map((verdict) => [verdict.port, verdict.summary]), [
    [5432, 'DENIED: no ALLOW policy matches (checked "a-ports")'],
    [5433, 'ALLOWED by policy "a-ports"'],
  ])
  assert.deepEqual(result.verdicts[0].steps.map((step) => `${step.verdict} ${step.text}`), [
    'pass @web is an identity of this mesh',
    'pass ALLOW "c-web" applies only to tcp/web: skipped',
    'pass DENY "b-admins" does not match: the source is not #admin',
    'pass ALLOW "a-ports" does not match: port 5432 is not 5433',
  ])
  assert.match(explain(config, {from: '@web', to: 'tcp/db:7'}).verdicts[0].summary, /7 is not a target port of tcp\/db on db-1 \(5432, 5433\)/)
  assert.throws(() => explain(config, {from: '#frontend', to: 'tcp/db'}), /names more than one source/)
  assert.throws(() => explain(config, {from: '@nobody', to: 'tcp/db'}), /no identity named "nobody"/)
  assert.throws(() => explain(config, {from: '@web', to: 'tcp/none'}), /no agent hosts tcp\/none/)
  assert.throws(() => explain(config, {from: '@web', to: 'db'}), /has no protocol/)
  assert.throws(() => explain(config, {from: '@web', sourceIp: 'nope', to: 'tcp/db'}), /not an IP address/)
})

test('`ztctl policy explain` on a real controller: the deciding policy, JSON, and clear errors', async (t) => {
  const ctl = await startTestController(t)
  const ok = async (args: string[]) => {
    const result = await ctl.run(args)
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`)
    return result.stdout
  }

  await ok(['identity', 'create', 'web', '-a', 'server', '--out', '-'])
  await ok(['identity', 'create', 'client', '-a', 'frontend', '--out', '-'])
  await ok(['tunnel', 'open', 'outbound', 'tcp/web', '--agent', 'web', '--target', '127.0.0.1:8080', '--no-wait'])
  await ok(['policy', 'create', 'no-frontend', '--action', 'DENY', '--from', '#frontend', '--service', 'tcp/web'])
  const text = await ok(['policy', 'explain', '--from', '@client', '--to', 'tcp/web:8080'])
  assert.match(text, /web, port 8080: DENIED by policy "no-frontend"/)
  assert.match(text, /✘ DENY "no-frontend" matches/)
  assert.match(text, /never connected/, 'an agent that never applied the configuration is noted')
  const json = JSON.parse(await ok(['policy', 'explain', '--from', '@client', '--to', 'tcp/web', '-o', 'json'])) as {verdicts: {decision: {allowed: boolean; policy?: string}}[]}
  assert.deepEqual(json.verdicts.map((verdict) => verdict.decision), [{allowed: false, policy: 'no-frontend', reason: 'denied by policy "no-frontend"'}])

  for (const [args, code, message] of [
    [['--from', '@nobody', '--to', 'tcp/web'], 3, /no identity named "nobody"/],
    [['--from', '#frontend', '--to', 'tcp/web'], 2, /names more than one source/],
    [['--from', '@client', '--to', 'web'], 2, /has no protocol/],
    [['--from', '@client', '--to', 'tcp/none'], 3, /no agent hosts tcp\/none/],
  ] as const) {
    const result = await ctl.run(['policy', 'explain', ...args])
    assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`)
    assert.match(result.stderr, message)
  }
})

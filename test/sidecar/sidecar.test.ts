// Sidecar modes: which services an identity may dial, the tproxy rule text, intercept parsing, and
// `--mode proxy` end to end with two real agents (HBONE over mTLS on 127.0.0.1; no privileges).
import assert from 'node:assert/strict'
import {test} from 'node:test'

import {emptySnapshot} from '../../src/lib/config/types.js'
import {parseIntercept as parseInterceptFlag} from '../../src/lib/mesh/parse.js'
import {MeshState} from '../../src/lib/proxy/state/state.js'
import {allocateInterceptAddresses} from '../../src/lib/sidecar/addresses.js'
import {formatIntercept, parseIntercept} from '../../src/lib/sidecar/intercept.js'
import {assertNetAdmin, sidecarRuleText} from '../../src/lib/sidecar/rules.js'
import {planIntercepts} from '../../src/lib/sidecar/services.js'
import {parseProxyPort, proxyPorts} from '../../src/lib/sidecar/sidecar.js'
import {createMesh, echoServer, roundTrip, startAgent, tempDir, tunnelConfig, waitFor} from '../proxy/helpers.js'

const TD = 'test.mesh'

function meshWithServices() {
  const snapshot = emptySnapshot()
  snapshot.agent.host = {hbone: '10.0.0.9:15008', name: 'host', spiffe: `spiffe://${TD}/identity/host`}
  snapshot.identity.pod = {name: 'pod', roles: ['frontend'], spiffe: `spiffe://${TD}/identity/pod`}
  const outbound = (service: string, allow: string[] = [], port = 80) => {
    snapshot.outbound[`${service}@host`] = {agent: 'host', allow, service, targets: [{host: '127.0.0.1', port}]}
  }

  outbound('tcp/open')
  outbound('tcp/frontends', ['#frontend'])
  outbound('tcp/admins', ['#admin'])
  outbound('tcp/denied')
  outbound('tcp/cidr-deny')
  snapshot.policy['no-denied'] = {action: 'DENY', from: ['@pod'], name: 'no-denied', ports: [], services: ['tcp/denied'], sourceCidrs: []}
  // The hosting agent judges source CIDRs; ahead of time such a DENY cannot rule the service out.
  snapshot.policy['cidr-deny'] = {action: 'DENY', from: [], name: 'cidr-deny', ports: [], services: ['tcp/cidr-deny'], sourceCidrs: ['10.0.0.0/8']}
  snapshot.inbound['tcp/open@pod'] = {agent: 'pod', intercept: ['open.mesh:80', '10.20.0.0/16', 'bad name!'], listen: '127.0.0.1:0', service: 'tcp/open'}
  snapshot.inbound['tcp/admins@other'] = {agent: 'other', intercept: ['admins.mesh'], listen: '127.0.0.1:0', service: 'tcp/admins'}
  return snapshot
}

test('dialable services follow allow lists and policies; DNS names are allocated mesh-wide, answered only when dialable', () => {
  const plan = planIntercepts(new MeshState(meshWithServices(), 1, {name: 'pod', trustDomain: TD}))
  assert.deepEqual(plan.services.map((entry) => entry.service), ['tcp/cidr-deny', 'tcp/frontends', 'tcp/open'])
  assert.deepEqual(plan.services.find((entry) => entry.service === 'tcp/open')?.intercepts, [
    {host: 'open.mesh', kind: 'host', port: 80},
    {cidr: '10.20.0.0/16', kind: 'cidr', port: undefined},
  ])
  assert.deepEqual(plan.invalid, ['tcp/open@pod: "bad name!"'])
  const everywhere = allocateInterceptAddresses(['open.mesh', 'admins.mesh'])
  assert.deepEqual([...plan.dnsRecords], [['open.mesh', everywhere.get('open.mesh')]])

  const admin = emptySnapshot()
  Object.assign(admin, meshWithServices())
  admin.identity.pod = {name: 'pod', roles: ['admin'], spiffe: `spiffe://${TD}/identity/pod`}
  const adminPlan = planIntercepts(new MeshState(admin, 1, {name: 'pod', trustDomain: TD}))
  assert.ok(adminPlan.services.some((entry) => entry.service === 'tcp/admins'))
  assert.ok(!adminPlan.services.some((entry) => entry.service === 'tcp/frontends'))
})

test('intercept syntax: HOST|IP|CIDR[:PORT], canonical spelling, clear usage errors', () => {
  assert.deepEqual(parseIntercept('Web.Mesh:8080'), {host: 'web.mesh', kind: 'host', port: 8080})
  assert.deepEqual(parseIntercept('10.1.2.3'), {cidr: '10.1.2.3/32', kind: 'cidr', port: undefined})
  assert.equal(formatIntercept(parseIntercept('10.1.2.3:443')!), '10.1.2.3:443')
  assert.equal(parseInterceptFlag('10.0.0.0/8:443'), '10.0.0.0/8:443')
  for (const bad of ['', 'web.mesh:0', 'web.mesh:70000', '10.0.0.0/33', 'a_b.mesh', '1.2.3', '::1', 'x'.repeat(400)]) {
    assert.equal(parseIntercept(bad), undefined, bad)
  }

  assert.throws(() => parseInterceptFlag('::1'), {code: 'ZT_ERR_INVALID_INTERCEPT'})
})

test('tproxy rule text: skip mark first, agents excluded, one REDIRECT per intercept', () => {
  const text = sidecarRuleText(
    [{destination: '100.64.1.2/32', port: 80, service: 'tcp/web', toPort: 41000}, {destination: '10.20.0.0/16', service: 'tcp/db', toPort: 41001}],
    [{destination: '10.0.0.9/32', port: 15008}],
  )
  assert.equal(text, [
    '*nat',
    ':ZTCTL_SIDECAR - [0:0]',
    '-A ZTCTL_SIDECAR -m mark --mark 0x539/0xfff -j RETURN',
    '-A ZTCTL_SIDECAR -d 10.0.0.9/32 -p tcp -m tcp --dport 15008 -j RETURN',
    '-A ZTCTL_SIDECAR -d 100.64.1.2/32 -p tcp -m tcp --dport 80 -m comment --comment "ztctl tcp/web" -j REDIRECT --to-ports 41000',
    '-A ZTCTL_SIDECAR -d 10.20.0.0/16 -p tcp -m comment --comment "ztctl tcp/db" -j REDIRECT --to-ports 41001',
    'COMMIT',
    '',
  ].join('\n'))
})

test('NET_ADMIN missing is a clear ZtError; proxy ports are explicit or stable', async (t) => {
  const dir = await tempDir(t)
  const {writeFile} = await import('node:fs/promises')
  await writeFile(`${dir}/status`, 'Name:\tnode\nCapEff:\t0000000000000000\n')
  await assert.rejects(assertNetAdmin(`${dir}/status`), {code: 'ZT_ERR_NET_ADMIN', message: /NET_ADMIN/})
  await writeFile(`${dir}/status`, 'CapEff:\t0000000000001000\n')
  await assertNetAdmin(`${dir}/status`)

  assert.deepEqual(parseProxyPort('tcp/web=8080'), ['tcp/web', 8080])
  assert.throws(() => parseProxyPort('web=8080'), {code: 'ZT_ERR_USAGE'})
  const ports = proxyPorts(['tcp/b', 'tcp/a', 'tcp/c'], {'tcp/c': 9000})
  assert.deepEqual(proxyPorts(['tcp/c', 'tcp/a', 'tcp/b'], {'tcp/c': 9000}), ports)
  assert.equal(ports.get('tcp/c'), 9000)
  for (const service of ['tcp/a', 'tcp/b']) assert.ok(ports.get(service)! >= 20_000 && ports.get(service)! < 30_000)
  assert.notEqual(ports.get('tcp/a'), ports.get('tcp/b'))
})

test('--mode proxy: each dialable service is bound on 127.0.0.1 and carried over HBONE; a denied one is not bound', async (t) => {
  const dir = await tempDir(t)
  const mesh = await createMesh(TD)
  const [client, server] = await Promise.all([mesh.identity('pod'), mesh.identity('host')])
  const {port: echoPort} = await echoServer(t)
  const targets = [{host: '127.0.0.1', port: echoPort}]
  const serverAgent = await startAgent(t, dir, server, tunnelConfig({client, server, serverHbone: '127.0.0.1:1', targets}))
  const config = tunnelConfig({client, name: 'web', server, serverHbone: serverAgent.agent.addresses.hbone, targets})
  delete config.inbound['tcp/web@pod']
  config.outbound['tcp/secret@host'] = {agent: 'host', allow: ['#ops'], service: 'tcp/secret', targets}
  const proxyPort = await freePort()
  const clientAgent = await startAgent(t, dir, client, config, {sidecar: {mode: 'proxy', proxyPorts: {'tcp/web': proxyPort}}})
  await clientAgent.agent.ready
  const bound: Record<string, string> = clientAgent.agent.addresses.inbound
  assert.deepEqual({...bound}, {'tcp/web@pod~proxy': `127.0.0.1:${proxyPort}`})
  const echoed = await roundTrip(`127.0.0.1:${proxyPort}`, Buffer.from('through the loopback sidecar'))
  assert.equal(echoed.toString(), 'through the loopback sidecar')

  // A config change that lets the identity dial tcp/secret opens its listener at its stable port.
  config.identity.pod = {name: 'pod', roles: ['ops'], spiffe: client.spiffe}
  await clientAgent.writeConfig(config)
  const secretPort = proxyPorts(['tcp/secret', 'tcp/web'], {'tcp/web': proxyPort}).get('tcp/secret')
  await waitFor('tcp/secret bound', () => bound['tcp/secret@pod~proxy'])
  assert.equal(bound['tcp/secret@pod~proxy'], `127.0.0.1:${secretPort}`)
})

async function freePort(): Promise<number> {
  const {createServer} = await import('node:net')
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as {port: number}
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

// What a redirected pod sees of the mesh's services: every intercept host name gets the same 100.64/10
// address the tproxy sidecars give it, connections to those addresses (and to intercepted CIDRs, port
// permitting) map to their service, and the pod's resolv.conf is found where its processes read it.
import assert from 'node:assert/strict'
import {test} from 'node:test'

import {emptySnapshot} from '../../src/lib/config/types.js'
import {resolvConfFor} from '../../src/lib/inpod/dns.js'
import {meshServices} from '../../src/lib/inpod/services.js'
import {MeshState} from '../../src/lib/proxy/state/state.js'
import {planIntercepts} from '../../src/lib/sidecar/services.js'

function stateWith(inbound: Record<string, {agent: string; intercept: string[]; service: string}>): MeshState {
  const snapshot = emptySnapshot()
  for (const [key, tunnel] of Object.entries(inbound)) snapshot.inbound[key] = {...tunnel, listen: '127.0.0.1:0'}
  snapshot.outbound['tcp/web@b'] = {agent: 'b', allow: [], service: 'tcp/web', targets: [{host: '127.0.0.1', port: 8080}]}
  snapshot.agent.b = {hbone: '10.0.0.2:15008', name: 'b', spiffe: 'spiffe://t.mesh/identity/b'}
  snapshot.identity.a = {name: 'a', roles: [], spiffe: 'spiffe://t.mesh/identity/a'}
  return new MeshState(snapshot, 1, {name: 'a', trustDomain: 't.mesh'})
}

test('mesh names get the sidecars\' addresses; addresses and CIDRs map to their service, port permitting', () => {
  const state = stateWith({
    'tcp/db@c': {agent: 'c', intercept: ['db.mesh', '10.96.0.0/16:5432', 'not a host!'], service: 'tcp/db'},
    'tcp/web@a': {agent: 'a', intercept: ['Web.Mesh:80', '10.96.7.7'], service: 'tcp/web'},
  })
  const book = meshServices(state)
  assert.equal(meshServices(state), book, 'built once per configuration')
  const web = book.records.get('web.mesh')!
  assert.match(web, /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./)
  assert.deepEqual([...book.records.keys()].sort(), ['db.mesh', 'web.mesh'], 'every name of the mesh, wherever its tunnel is')
  assert.equal(planIntercepts(state).dnsRecords.get('web.mesh'), web, 'the same address a tproxy sidecar of this mesh answers')

  assert.equal(book.serviceAt(web, 80), 'tcp/web')
  assert.equal(book.serviceAt(web, 81), undefined, 'web.mesh is intercepted on port 80 only')
  assert.equal(book.serviceAt(book.records.get('db.mesh')!, 1234), 'tcp/db', 'no port: any port')
  assert.equal(book.serviceAt('10.96.7.7', 9), 'tcp/web', 'the /32 wins over the /16')
  assert.equal(book.serviceAt('10.96.1.1', 5432), 'tcp/db')
  assert.equal(book.serviceAt('10.96.1.1', 80), undefined)
  assert.equal(book.serviceAt('192.0.2.1', 80), undefined)
  assert.equal(meshServices(MeshState.empty({name: 'a', trustDomain: 't.mesh'})).records.size, 0)
})

test('the pod\'s resolv.conf: /etc/netns/NAME for a named netns, the process\'s root for /proc/PID/ns/net, else the host\'s', () => {
  const present = new Set(['/etc/netns/pod1/resolv.conf', '/proc/42/root/etc/resolv.conf'])
  const exists = (file: string): boolean => present.has(file)
  assert.equal(resolvConfFor('/var/run/netns/pod1', exists), '/etc/netns/pod1/resolv.conf')
  assert.equal(resolvConfFor('/run/netns/pod1', exists), '/etc/netns/pod1/resolv.conf')
  assert.equal(resolvConfFor('/var/run/netns/pod2', exists), '/etc/resolv.conf', 'no per-netns file: the host\'s')
  assert.equal(resolvConfFor('/proc/42/ns/net', exists), '/proc/42/root/etc/resolv.conf')
  assert.equal(resolvConfFor('/proc/43/ns/net', exists), '/etc/resolv.conf')
  assert.equal(resolvConfFor('/some/other/path', exists), '/etc/resolv.conf')
})

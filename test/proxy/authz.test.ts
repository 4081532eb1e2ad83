import assert from 'node:assert/strict'
import {test} from 'node:test'

import type {Policy} from '../../src/lib/config/types.js'
import {cidrContains, parseHostPort} from '../../src/lib/proxy/address.js'
import {authorize, type AuthzRequest, identityNameFromSpiffe} from '../../src/lib/proxy/state/authz.js'
import {forwardedHost} from '../../src/lib/proxy/paths/hbone-admission.js'
import {validateSnapshot} from '../../src/lib/proxy/state/state.js'
import {weightedOrder} from '../../src/lib/proxy/paths/carry.js'

const policy = (name: string, action: Policy['action'], fields: Partial<Policy> = {}): Policy => ({action, from: [], name, ports: [], services: [], sourceCidrs: [], ...fields})
const request = (fields: Partial<AuthzRequest> = {}): AuthzRequest => ({
  destinationPort: 80, service: 'tcp/web', sourceAddress: '10.1.2.3', sourceIdentity: 'web-client', sourceRoles: ['frontend'], sourceSpiffe: 'spiffe://td/identity/web-client', ...fields,
})

test('no policies: allow; an unidentified source: deny', () => {
  assert.deepEqual(authorize(request(), []), {allowed: true})
  assert.equal(authorize(request({sourceIdentity: undefined}), []).allowed, false)
})

test('any matching DENY rejects, even when an ALLOW also matches', () => {
  const decision = authorize(request(), [policy('allow-all', 'ALLOW'), policy('deny-frontend', 'DENY', {from: ['#frontend']})])
  assert.deepEqual(decision, {allowed: false, policy: 'deny-frontend', reason: 'denied by policy "deny-frontend"'})
})

test('ALLOW policies exist: allowed only when one matches', () => {
  const policies = [policy('only-admins', 'ALLOW', {from: ['#admin']}), policy('port-443', 'ALLOW', {ports: [443]})]
  assert.equal(authorize(request(), policies).allowed, false)
  assert.match((authorize(request(), policies) as {reason: string}).reason, /no ALLOW policy matches/)
  assert.deepEqual(authorize(request({destinationPort: 443}), policies), {allowed: true, policy: 'port-443'})
  assert.deepEqual(authorize(request({sourceRoles: ['admin']}), policies), {allowed: true, policy: 'only-admins'})
})

test('fields AND together, values within a field OR; @name, #role, spiffe://, CIDR v4/v6 and ports', () => {
  const both = policy('both', 'DENY', {from: ['@web-client', '@other'], sourceCidrs: ['10.0.0.0/8']})
  assert.equal(authorize(request(), [both]).allowed, false)
  assert.equal(authorize(request({sourceAddress: '192.168.1.1'}), [both]).allowed, true)
  assert.equal(authorize(request({sourceIdentity: 'someone'}), [both]).allowed, true)
  assert.equal(authorize(request({sourceAddress: '::ffff:10.9.9.9'}), [both]).allowed, false)
  const v6 = policy('v6', 'DENY', {sourceCidrs: ['fd00::/8']})
  assert.equal(authorize(request({sourceAddress: 'fd12::1'}), [v6]).allowed, false)
  assert.equal(authorize(request({sourceAddress: 'fe80::1'}), [v6]).allowed, true)
  assert.equal(authorize(request(), [policy('by-id', 'DENY', {from: ['spiffe://td/identity/web-client']})]).allowed, false)
})

test('a policy scoped to other services does not apply', () => {
  assert.equal(authorize(request(), [policy('db-only', 'ALLOW', {services: ['tcp/db']})]).allowed, true)
  assert.equal(authorize(request({service: 'tcp/db'}), [policy('db-only', 'ALLOW', {from: ['#dba'], services: ['tcp/db']})]).allowed, false)
})

test('the tunnel allow list gates before policies', () => {
  assert.equal(authorize(request(), [], ['#backend']).allowed, false)
  assert.equal(authorize(request(), [], ['#frontend']).allowed, true)
  assert.equal(authorize(request(), [], ['@web-client']).allowed, true)
})

test('address helpers survive garbage', () => {
  assert.deepEqual(parseHostPort('[::1]:15008'), {host: '::1', port: 15_008})
  assert.deepEqual(parseHostPort(':80', '127.0.0.1'), {host: '127.0.0.1', port: 80})
  for (const junk of ['', 'nocolon', '1.2.3.4:99999', '[::1]80', 'a b:1', 'x'.repeat(400) + ':1', 42, undefined, '1.2.3.4:-1']) {
    assert.equal(parseHostPort(junk), undefined, String(junk))
  }

  assert.equal(cidrContains('10.0.0.0/33', '10.0.0.1'), false)
  assert.equal(cidrContains('garbage', '10.0.0.1'), false)
  assert.equal(cidrContains('0.0.0.0/0', '8.8.8.8'), true)
  assert.equal(forwardedHost('for="1.2.3.4:5";host="tcp/web"'), 'tcp/web')
  assert.equal(forwardedHost('x'.repeat(5000)), undefined)
  assert.equal(identityNameFromSpiffe('spiffe://td/identity/a/../b', 'td'), undefined)
  assert.equal(identityNameFromSpiffe('spiffe://other/identity/a', 'td'), undefined)
})

test('weighted order: every endpoint once, heavy weights first most of the time', () => {
  const endpoints = [{name: 'light', weight: 1}, {name: 'heavy', weight: 99}]
  let heavyFirst = 0
  for (let index = 0; index < 200; index++) {
    const order = weightedOrder(endpoints)
    assert.equal(order.length, 2)
    if (order[0].name === 'heavy') heavyFirst++
  }

  assert.ok(heavyFirst > 150, `heavy first ${heavyFirst}/200`)
})

test('configuration validation names the bad entry', () => {
  assert.throws(() => validateSnapshot([]), /not a JSON object/)
  assert.throws(() => validateSnapshot({policy: {p: {action: 'AUDIT'}}}), /invalid policy "p": action must be ALLOW or DENY/)
  assert.throws(() => validateSnapshot({outbound: {x: {agent: 'a', allow: [], service: 'tcp/x', targets: [{host: 'h', port: 0}]}}}), /bad target port/)
  assert.throws(() => validateSnapshot({policy: {p: {action: 'DENY', from: [], name: 'p', ports: [], services: [], sourceCidrs: ['10.0.0.0/99']}}}), /bad CIDR/)
  assert.deepEqual(validateSnapshot({}).policy, {})
})

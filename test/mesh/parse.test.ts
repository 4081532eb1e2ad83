import assert from 'node:assert/strict'
import {test} from 'node:test'

import {ZtError} from '../../src/lib/errors.js'
import {buildPolicy} from '../../src/lib/mesh/policies.js'
import {parseCidr, parseListen, parseServiceName, parseSubject, parseTarget} from '../../src/lib/mesh/parse.js'

function rejects(fn: () => unknown, code: string, suggestion: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(ZtError.is(error), 'a user error')
    assert.equal(error.code, code)
    assert.equal(error.exit, 2)
    assert.match(error.suggestion ?? '', suggestion)
    return true
  })
}

test('service names are tcp/NAME or udp/NAME, and a bare name is told how to fix itself', () => {
  assert.equal(parseServiceName('tcp/web-1'), 'tcp/web-1')
  assert.equal(parseServiceName('udp/dns'), 'udp/dns')
  rejects(() => parseServiceName('web'), 'ZT_ERR_INVALID_SERVICE', /tcp\/web/)
  rejects(() => parseServiceName('sctp/x'), 'ZT_ERR_INVALID_SERVICE', /tcp\/NAME or udp\/NAME/)
  rejects(() => parseServiceName('proxy'), 'ZT_ERR_INVALID_SERVICE', /tcp\/proxy/)
  rejects(() => parseServiceName('tcp/Bad_Name!'), 'ZT_ERR_INVALID_SERVICE', /lower-case/)
  assert.deepEqual(buildPolicy({action: 'DENY', name: 'p', services: ['proxy', 'udp/dns']}).services, ['proxy', 'udp/dns'])
})

test('targets, listen addresses, subjects and CIDRs', () => {
  assert.deepEqual(parseTarget('127.0.0.1:8080'), {host: '127.0.0.1', port: 8080})
  assert.deepEqual(parseTarget('[::1]:80@3'), {host: '::1', port: 80, weight: 3})
  assert.deepEqual(parseTarget('db.internal:5432'), {host: 'db.internal', port: 5432})
  rejects(() => parseTarget('host'), 'ZT_ERR_INVALID_ADDRESS', /HOST:PORT/)
  rejects(() => parseTarget('host:99999'), 'ZT_ERR_INVALID_ADDRESS', /HOST:PORT/)
  rejects(() => parseTarget('h:1@0'), 'ZT_ERR_INVALID_TARGET', /weight/)
  assert.equal(parseListen('8080'), '127.0.0.1:8080')
  assert.equal(parseListen('0.0.0.0:80'), '0.0.0.0:80')
  assert.equal(parseListen('[::1]:80'), '[::1]:80')
  rejects(() => parseListen('localhost:80'), 'ZT_ERR_INVALID_ADDRESS', /IP/)
  assert.equal(parseSubject('@alice'), '@alice')
  assert.equal(parseSubject('#ops'), '#ops')
  rejects(() => parseSubject('alice'), 'ZT_ERR_INVALID_SUBJECT', /@alice.*#alice/)
  assert.equal(parseCidr('10.0.0.0/8'), '10.0.0.0/8')
  assert.equal(parseCidr('10.1.2.3'), '10.1.2.3/32')
  assert.equal(parseCidr('fd00::/64'), 'fd00::/64')
  rejects(() => parseCidr('10.0.0.0/33'), 'ZT_ERR_INVALID_CIDR', /ADDRESS\/BITS/)
})

test('a policy is validated as a whole', () => {
  assert.deepEqual(buildPolicy({action: 'deny', from: ['#guest'], name: 'no-guests', ports: ['22']}), {
    action: 'DENY',
    from: ['#guest'],
    name: 'no-guests',
    ports: [22],
    services: [],
    sourceCidrs: [],
  })
  rejects(() => buildPolicy({action: 'AUDIT', name: 'x'}), 'ZT_ERR_INVALID_ACTION', /ALLOW.*DENY/)
})

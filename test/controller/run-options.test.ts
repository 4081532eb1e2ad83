// controllerRunOptions (src/lib/controller/run-options.ts): `controller run`'s flag values as the
// controller's options, and each bad duration a ZT_ERR_BAD_FLAG naming its flag.
import assert from 'node:assert/strict'
import {test} from 'node:test'

import {type ControllerRunFlags, controllerRunOptions} from '../../src/lib/controller/run-options.js'
import {ZtError} from '../../src/lib/errors.js'

/** The command's defaults. */
const DEFAULTS: ControllerRunFlags = {
  'admin-cert-ttl': '720h', 'cert-ttl': '24h', 'context-name': 'local', hub: false, 'hub-listen': '0.0.0.0:15009', 'hub-name': 'hub',
  'housekeeping-interval': '60s', 'leader-election': '15s,10s,2s', listen: '127.0.0.1:15012', 'log-level': 'info', store: 'sqlite',
}

const badFlag = (message: string, suggestion: string) => (error: unknown): boolean => {
  assert.ok(ZtError.is(error), String(error))
  assert.deepEqual([error.code, error.exit, error.message, error.suggestion], ['ZT_ERR_BAD_FLAG', 2, message, suggestion])
  return true
}

test('the defaults as options: seconds for certificates, milliseconds for timers, the pod\'s namespace and name', () => {
  const options = controllerRunOptions(DEFAULTS, {POD_NAME: 'ztctl-controller-0', POD_NAMESPACE: 'mesh'})
  assert.equal(options.certTtlSeconds, 86_400)
  assert.equal(options.adminCertTtlSeconds, 720 * 3600)
  assert.equal(options.housekeepingMs, 60_000)
  assert.deepEqual(options.kube?.lease, {durationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2000})
  assert.equal(options.kube?.namespace, 'mesh')
  assert.equal(options.kube?.podName, 'ztctl-controller-0')
  assert.equal(options.hub, undefined)
  assert.equal(options.caImport, undefined)
  assert.equal(controllerRunOptions(DEFAULTS, {}).kube?.namespace, 'ztctl-system')
  assert.equal(controllerRunOptions({...DEFAULTS, namespace: 'given'}, {POD_NAMESPACE: 'mesh'}).kube?.namespace, 'given')

  const hub = controllerRunOptions({...DEFAULTS, 'ca-cert': 'ca.pem', 'ca-key': 'ca.key', hub: true, 'log-level': 'debug'}, {})
  assert.deepEqual(hub.hub, {listen: '0.0.0.0:15009', logLevel: 'debug', name: 'hub'})
  assert.deepEqual(hub.caImport, {certFile: 'ca.pem', keyFile: 'ca.key'})
})

test('a bad duration names its flag', () => {
  assert.throws(() => controllerRunOptions({...DEFAULTS, 'cert-ttl': '1s'}, {}), badFlag('--cert-ttl "1s" is not a duration of at least 2s', 'e.g. --cert-ttl 24h or --cert-ttl 30s'))
  assert.throws(() => controllerRunOptions({...DEFAULTS, 'admin-cert-ttl': 'soon'}, {}), badFlag('--admin-cert-ttl "soon" is not a duration of at least 2s', 'e.g. --admin-cert-ttl 720h'))
  assert.throws(() => controllerRunOptions({...DEFAULTS, 'housekeeping-interval': '0s'}, {}), badFlag('--housekeeping-interval: "0s" is not a duration', 'e.g. 500ms, 10s, 1m'))
  assert.throws(() => controllerRunOptions({...DEFAULTS, 'leader-election': '15s,x,2s'}, {}), badFlag('--leader-election: "x" is not a duration', 'e.g. 500ms, 10s, 1m'))
  for (const text of ['15s,10s', '10s,15s,2s', '15s,10s,10s']) {
    assert.throws(() => controllerRunOptions({...DEFAULTS, 'leader-election': text}, {}),
      badFlag(`--leader-election "${text}" is not DURATION,RENEW-DEADLINE,RETRY-PERIOD, each shorter than the one before`, 'e.g. --leader-election 15s,10s,2s'))
  }
})

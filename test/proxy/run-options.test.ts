// agentRunOptions (src/lib/proxy/daemon/run-options.ts): `agent run`'s flag values as the daemon's
// options: durations, the --no-listen admin door, the pod's advertised address, and the refusals.
import assert from 'node:assert/strict'
import {test} from 'node:test'

import {MAX_HUBS} from '../../src/lib/config/types.js'
import {ZtError} from '../../src/lib/errors.js'
import {type AgentRunContext, type AgentRunFlags, agentRunOptions} from '../../src/lib/proxy/daemon/run-options.js'

/** The command's defaults, with an identity file. */
const DEFAULTS: AgentRunFlags = {
  admin: '127.0.0.1:15000', 'data-path': 'auto', 'dns-listen': '127.0.0.1:53', 'drain-timeout': '5s', hbone: '0.0.0.0:15008', identity: 'a.json',
  'inpod-state-dir': '/var/run/ztctl/inpod', 'kube-ca-file': '/ca.crt', 'kube-token-file': '/token', kubernetes: false, 'log-level': 'info',
  metrics: '0.0.0.0:15020', 'no-listen': false, readiness: '0.0.0.0:15021', 'stop-with-stdin': false,
}

const context = (env: NodeJS.ProcessEnv = {}): AgentRunContext => ({buildVersion: '1.2.3', dataDir: () => '/home/z', env, json: false})

const usage = (message: RegExp) => (error: unknown): boolean => {
  assert.ok(ZtError.is(error), String(error))
  assert.equal(error.code, 'ZT_ERR_USAGE')
  assert.equal(error.exit, 2)
  assert.match(error.message, message)
  return true
}

test('the defaults as daemon options', async () => {
  const options = await agentRunOptions(DEFAULTS, context())
  assert.equal(options.admin, '127.0.0.1:15000')
  assert.equal(options.adminSocketDir, undefined)
  assert.equal(options.advertise, undefined)
  assert.equal(options.buildVersion, '1.2.3')
  assert.equal(options.drainTimeoutMs, 5000)
  assert.equal(options.idleTrimMs, 10_000)
  assert.deepEqual(options.hubs, [])
  assert.equal(options.kubernetes, undefined)
  assert.equal(options.sidecar, undefined)
  assert.equal((await agentRunOptions(DEFAULTS, context({ZTCTL_AGENT_IDLE_TRIM: '0'}))).idleTrimMs, 0)
  assert.equal((await agentRunOptions(DEFAULTS, context({ZTCTL_AGENT_IDLE_TRIM: '1500ms'}))).idleTrimMs, 1500)
})

test('--no-listen: the default admin door becomes a socket under the home, a named one stays', async () => {
  const socket = await agentRunOptions({...DEFAULTS, 'no-listen': true}, context())
  assert.equal(socket.admin, undefined)
  assert.equal(socket.adminSocketDir, '/home/z/agents')
  const named = await agentRunOptions({...DEFAULTS, admin: 'unix:/run/a.sock', 'no-listen': true}, context())
  assert.deepEqual([named.admin, named.adminSocketDir], ['unix:/run/a.sock', undefined])
})

test('--kubernetes: the controller URL is required, the pod IP is advertised on the HBONE port', async () => {
  const flags = {...DEFAULTS, controller: 'https://10.96.0.10:15012', identity: undefined, kubernetes: true, node: 'node-1'}
  const options = await agentRunOptions(flags, context({POD_IP: '10.0.0.7'}))
  assert.deepEqual(options.kubernetes, {caFile: '/ca.crt', controller: 'https://10.96.0.10:15012', node: 'node-1', tokenFile: '/token'})
  assert.equal(options.advertise, '10.0.0.7:15008')
  assert.equal(options.controllerUrl, undefined, 'the controller URL overrides an identity file\'s only')
  assert.equal((await agentRunOptions(flags, context({POD_IP: 'fd00::7'}))).advertise, '[fd00::7]:15008')
  assert.equal((await agentRunOptions(flags, context())).advertise, undefined)
  assert.equal((await agentRunOptions({...flags, advertise: '1.2.3.4:1'}, context({POD_IP: '10.0.0.7'}))).advertise, '1.2.3.4:1')
  await assert.rejects(agentRunOptions({...flags, controller: undefined}, context()), usage(/^--kubernetes needs --controller https:\/\/HOST:PORT$/))
  await assert.rejects(agentRunOptions({...flags, controller: 'http://x'}, context()), usage(/\(got "http:\/\/x"\)/))
})

test('bad values are usage errors that name what was wrong', async () => {
  await assert.rejects(agentRunOptions({...DEFAULTS, 'drain-timeout': 'soon'}, context()), usage(/^--drain-timeout "soon" is not a duration$/))
  await assert.rejects(agentRunOptions(DEFAULTS, context({ZTCTL_AGENT_IDLE_TRIM: 'soon'})), usage(/^ZTCTL_AGENT_IDLE_TRIM="soon" is not a duration$/))
  const hubs = Array.from({length: MAX_HUBS + 1}, (_, index) => `hub-${index}:15009`)
  await assert.rejects(agentRunOptions({...DEFAULTS, hub: hubs}, context()), usage(new RegExp(`^${MAX_HUBS + 1} hubs given; at most ${MAX_HUBS}$`)))
  assert.equal((await agentRunOptions({...DEFAULTS, hub: hubs.slice(1)}, context())).hubs?.length, MAX_HUBS)
})

test('--mode proxy: the proxy ports parsed', async () => {
  const options = await agentRunOptions({...DEFAULTS, mode: 'proxy', 'proxy-port': ['tcp/web=8080']}, context())
  assert.deepEqual(options.sidecar, {dnsListen: '127.0.0.1:53', dnsUpstream: undefined, mode: 'proxy', proxyPorts: {'tcp/web': 8080}, resolvConf: undefined})
})

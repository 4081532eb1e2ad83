// The config stream against a real controller: snapshot, push on commit, resume, acks, garbage.
import assert from 'node:assert/strict'
import http2 from 'node:http2'
import path from 'node:path'
import {test, type TestContext} from 'node:test'

import {type ConfigSnapshot} from '../../src/lib/config/types.js'
import {subscribeConfig} from '../../src/lib/client/config-stream.js'
import {ControllerClient} from '../../src/lib/client/controller-client.js'
import {SNAPSHOT_PART_BYTES, snapshotLines} from '../../src/lib/controller/config-feed.js'
import {openSqliteStore} from '../../src/lib/controller/store/sqlite.js'
import {readIdentityFile} from '../../src/lib/identity/file.js'
import {startTestController} from '../helpers/controller.js'

interface Applied {
  changes?: unknown[]
  snapshot: ConfigSnapshot
  version: number
}

/** Wait (bounded) until a predicate over the applied list holds. */
async function waitFor<T>(items: T[], predicate: (item: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const found = items.find(predicate)
    if (found) return found
    await new Promise((resolve) => setTimeout(resolve, 20))
  }

  throw new Error('timed out waiting for a config version')
}

/** A real controller, the enrolled identity agent-a, and an admin client. */
async function controllerWithAgent(t: TestContext) {
  const ctl = await startTestController(t)
  assert.equal((await ctl.run(['identity', 'create', 'agent-a'])).code, 0)
  assert.equal((await ctl.run(['enroll', path.join(ctl.home, 'agent-a.jwt')])).code, 0)
  const identity = await readIdentityFile(path.join(ctl.home, 'agent-a.json'))
  const admin = ControllerClient.fromIdentity({...(await readIdentityFile(ctl.adminIdentityPath)), controller: ctl.url})
  t.after(() => admin.close())
  return {admin, ctl, identity}
}

const policy = (name: string) => ({action: 'ALLOW', from: ['#frontend'], name, ports: [5432], services: ['tcp/db'], sourceCidrs: []})

test('config stream: snapshot, delta, resume, ack, garbage', async (t) => {
  const {admin, identity} = await controllerWithAgent(t)

  const applied: Applied[] = []
  const subscription = subscribeConfig({
    agent: 'agent-a', hbone: '127.0.0.1:15008', identity, minBackoffMs: 100,
    onConfig: (snapshot, version, changes) => void applied.push({changes, snapshot, version}),
  })
  t.after(() => subscription.close())

  const first = await waitFor(applied, () => true)
  assert.equal(first.changes, undefined, 'the first message is a snapshot')
  assert.ok(first.snapshot.identity['agent-a'], 'identities are in the config')

  // The agent's own record appears (subscribing recorded it) and a PUT arrives as a delta.
  const {version} = await admin.request<{version: number}>('PUT', '/v1/resources/policy/allow-db', policy('allow-db'))
  const delta = await waitFor(applied, (item) => item.version >= version, 1000)
  assert.ok(delta.changes, 'pushed as a delta')
  assert.deepEqual(delta.snapshot.policy['allow-db'], policy('allow-db'))
  assert.equal(delta.snapshot.agent['agent-a']?.hbone, '127.0.0.1:15008')

  // The ack is recorded (polled, bounded).
  const agentStatus = async () =>
    (await admin.request<{agents: {ackedVersion?: number; name: string; online: boolean}[]}>('GET', '/v1/agents')).agents.find((agent) => agent.name === 'agent-a')
  const statuses = [] as {ackedVersion?: number; online: boolean}[]
  for (let attempt = 0; attempt < 100 && statuses.at(-1)?.ackedVersion !== version; attempt++) {
    statuses.push((await agentStatus())!)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }

  assert.equal(statuses.at(-1)?.ackedVersion, version)
  assert.equal(statuses.at(-1)?.online, true)

  // Resume: a second subscriber starting from `version` gets only what came after it.
  subscription.close()
  await admin.request('DELETE', '/v1/resources/policy/allow-db')
  const resumed: Applied[] = []
  const second = subscribeConfig({
    agent: 'agent-a', hbone: '127.0.0.1:15008', identity, minBackoffMs: 100,
    onConfig: (snapshot, next, changes) => void resumed.push({changes, snapshot, version: next}),
  })
  t.after(() => second.close())
  const firstResumed = await waitFor(resumed, () => true)
  assert.equal(firstResumed.changes, undefined, 'without a local snapshot the client asks for one')
  assert.equal(firstResumed.snapshot.policy['allow-db'], undefined)
  second.close()

  // Raw resume from `since` on the wire: a delta from that version.
  const raw = await rawStream(identity, JSON.stringify({agent: 'agent-a', hbone: '127.0.0.1:15008', since: version, type: 'subscribe'}) + '\n')
  const message = JSON.parse(raw.split('\n')[0])
  assert.equal(message.type, 'delta')
  assert.equal(message.from, version)
  assert.deepEqual(message.changes, [{key: 'allow-db', kind: 'policy', op: 'delete'}])

  // Garbage gets an error message and a closed stream; the controller keeps serving.
  const garbage = await rawStream(identity, '{{{ not json\n')
  assert.equal(JSON.parse(garbage.split('\n')[0]).type, 'error')
  const impersonation = await rawStream(identity, JSON.stringify({agent: 'someone-else', hbone: '1.2.3.4:1', type: 'subscribe'}) + '\n')
  assert.equal(JSON.parse(impersonation.split('\n')[0]).error.code, 'ZT_ERR_FORBIDDEN')
  // An ack whose statuses are not statuses is garbage too.
  const subscribe = JSON.stringify({agent: 'agent-a', hbone: '127.0.0.1:15008', type: 'subscribe'}) + '\n'
  for (const resources of [[{kind: 'bogus', key: 'x', state: 'applied'}], [{kind: 'inbound', key: 'x', state: 'maybe'}], 'all fine', Array.from({length: 5000}, () => ({kind: 'policy', key: 'p', state: 'applied'}))]) {
    // The reply is a (cached) snapshot, maybe the delta from it, then the error.
    const reply = await rawStream(identity, subscribe + JSON.stringify({resources, type: 'ack', version: 1}) + '\n', 3)
    assert.ok(reply.split('\n').filter(Boolean).some((line) => JSON.parse(line).type === 'error'), JSON.stringify(resources).slice(0, 80))
  }

  const huge = await rawStream(identity, 'x'.repeat(5 * 1024 * 1024))
  assert.equal(JSON.parse(huge.split('\n')[0]).type, 'error')
  assert.equal((await admin.request<{version: string}>('GET', '/v1/version')).version.length > 0, true)
})

/** Send BODY on a config stream and return what comes back up to the LINES-th full line (bounded in time). */
async function rawStream(identity: {ca: string; cert: string; controller: string; key: string}, body: string, lines = 1): Promise<string> {
  const session = http2.connect(identity.controller, {ca: identity.ca, cert: identity.cert, key: identity.key})
  try {
    const stream = session.request({':method': 'POST', ':path': '/v1/config/stream'}, {endStream: false})
    stream.write(body)
    let text = ''
    const done = new Promise<void>((resolve) => {
      stream.on('data', (chunk: Buffer) => {
        text += chunk.toString()
        if (text.split('\n').length > lines) resolve()
      })
      stream.on('close', () => resolve())
      stream.on('error', () => resolve())
      setTimeout(resolve, 5000).unref()
    })
    await done
    stream.destroy()
    return text
  } finally {
    session.destroy()
  }
}

test('acks carry per-resource status and the agent\'s version; a re-ack replaces them', async (t) => {
  const {admin, identity} = await controllerWithAgent(t)
  const failing = {code: 'EADDRINUSE', key: 'tcp/web@agent-a', kind: 'inbound' as const, reason: 'x'.repeat(2000), state: 'error' as const}
  const subscription = subscribeConfig({agent: 'agent-a', hbone: '127.0.0.1:15008', identity, minBackoffMs: 100, onConfig: () => [failing], software: '9.9.9'})
  t.after(() => subscription.close())
  type Status = {agents: {name: string; resources: {code?: string; reason?: string; state: string}[]; software?: string}[]}
  const agentA = async () => (await admin.request<Status>('GET', '/v1/agents')).agents.find((agent) => agent.name === 'agent-a')
  const deadline = Date.now() + 5000
  while (Date.now() < deadline && (await agentA())?.resources.length !== 1) await new Promise((resolve) => setTimeout(resolve, 50))
  const reported = (await agentA())!
  assert.equal(reported.software, '9.9.9')
  assert.equal(reported.resources[0].state, 'error')
  assert.equal(reported.resources[0].code, 'EADDRINUSE')
  assert.equal(reported.resources[0].reason!.length, 512, 'reasons are bounded')

  subscription.report([{key: 'tcp/web@agent-a', kind: 'inbound', state: 'applied'}])
  while (Date.now() < deadline + 5000 && (await agentA())?.resources[0]?.state !== 'applied') await new Promise((resolve) => setTimeout(resolve, 50))
  assert.deepEqual((await agentA())!.resources, [{key: 'tcp/web@agent-a', kind: 'inbound', state: 'applied'}])
})

test('a snapshot larger than one line comes in parts, and the agent applies it whole, once', async (t) => {
  const {ctl, identity} = await controllerWithAgent(t)
  // Enough workloads for a snapshot of more than one part, written while the controller is stopped.
  const count = 24_000
  await ctl.stop()
  const store = await openSqliteStore(ctl.dataDir, {synchronous: 'OFF'})
  for (let index = 0; index < count; index++) {
    const uid = `uid-${String(index).padStart(6, '0')}`
    await store.putResource('workload', uid, {
      hbone: `10.1.${index >> 8 & 255}.${index & 255}:15008`, ips: [`10.2.${index >> 8 & 255}.${index & 255}`], name: `app-${index}-7d9f8b6c5-x2x9q`,
      namespace: `ns-${index % 50}`, node: 'node-1', serviceAccount: `sa-${index % 20}`, uid,
    })
  }

  const {resources, version: stored} = await store.snapshot()
  await store.close()
  const lines = snapshotLines(resources, stored)
  assert.ok(lines.length > 1, `${lines.length} part(s) for ${count} workloads`)
  for (const [index, line] of lines.entries()) {
    assert.ok(line.length <= SNAPSHOT_PART_BYTES + 1024, `part ${index}: ${line.length} bytes`)
    assert.equal(JSON.parse(line.toString()).more, index < lines.length - 1 ? true : undefined)
  }

  await ctl.restart()
  const applied: Applied[] = []
  const subscription = subscribeConfig({
    agent: 'agent-a', hbone: '127.0.0.1:15008', identity, minBackoffMs: 100,
    onConfig: (snapshot, version, changes) => void applied.push({changes, snapshot, version}),
  })
  t.after(() => subscription.close())
  const first = await waitFor(applied, () => true, 30_000)
  assert.equal(first.changes, undefined, 'a snapshot')
  assert.equal(Object.keys(first.snapshot.workload).length, count, 'every workload of every part')
  assert.deepEqual(first.snapshot.workload['uid-012345'], resources.workload['uid-012345'])
  assert.ok(first.snapshot.identity['agent-a'] && first.snapshot.agent['agent-a'], 'the other kinds too')
  // A change after it is a delta on top of the assembled snapshot; no part was ever applied on its own.
  const admin = ControllerClient.fromIdentity({...(await readIdentityFile(ctl.adminIdentityPath)), controller: ctl.url})
  t.after(() => admin.close())
  const {version} = await admin.request<{version: number}>('PUT', '/v1/resources/policy/allow-db', policy('allow-db'))
  const delta = await waitFor(applied, (item) => item.version >= version, 10_000)
  assert.ok(delta.changes, 'a delta')
  assert.equal(Object.keys(delta.snapshot.workload).length, count)
  assert.ok(delta.snapshot.policy['allow-db'])
  assert.equal(applied.filter((item) => item.changes === undefined).length, 1, 'one snapshot applied')
})

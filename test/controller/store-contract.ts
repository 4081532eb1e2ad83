// The Store contract (src/lib/controller/store/store.ts), one suite for every backend: test files call
// storeContract() with a function that makes a fresh, empty backing state (a temp SQLite dir, a new
// namespace on a real API server) and opens stores on it. Each test asserts behaviour through the
// interface only, so SQLite and Kubernetes are held to the same words.
import assert from 'node:assert/strict'
import {randomUUID} from 'node:crypto'
import {test} from 'node:test'

import type {Change, Policy} from '../../src/lib/config/types.js'
import {ZtError} from '../../src/lib/errors.js'
import type {CertRecord, IdentityRecord, NewIdentity, Store} from '../../src/lib/controller/store/store.js'
import {waitUntil} from '../helpers/wait.js'

export interface StoreBacking {
  /** open a store on this backing state; call again for a second replica (or a reopen after close) */
  open(): Promise<Store>
}

export interface ContractOptions {
  /** several stores may be open on one backing state at once and see each other's commits */
  replicas: boolean
}

interface TestContextLike {
  after(fn: () => Promise<void> | void): void
}

export type MakeBacking = (t: TestContextLike) => Promise<StoreBacking>

const HOUR = 3_600_000
const later = (ms: number): string => new Date(Date.now() + ms).toISOString()

export const policy = (name: string, port = 5432): Policy => ({action: 'ALLOW', from: ['#frontend'], name, ports: [port], services: ['tcp/db'], sourceCidrs: []})

export function newIdentity(name: string, overrides: Partial<NewIdentity> = {}): NewIdentity {
  return {
    admin: false, id: randomUUID(), name, roles: ['db'], spiffe: `spiffe://cluster.local/identity/${name}`,
    tokenExpiresAt: later(HOUR), tokenId: randomUUID(), ...overrides,
  }
}

let serialCounter = 0
/** A certificate record of the identity's own (or, with `workload`, one it minted for a pod as a node). */
export function certFor(identity: Pick<IdentityRecord, 'id' | 'spiffe'>, ttlMs = HOUR, workload?: string): CertRecord {
  serialCounter++
  const serial = `${randomUUID().replaceAll('-', '').slice(0, 24)}${serialCounter.toString(16).padStart(8, '0')}`.toUpperCase()
  return {
    identityId: identity.id, notAfter: later(ttlMs), notBefore: new Date(Date.now() - 60_000).toISOString(), serial,
    spiffe: workload ?? identity.spiffe, usage: workload ? 'workload' : 'identity',
  }
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(ZtError.is(error), `expected a ZtError ${code}, got ${String(error)}`)
    assert.equal(error.code, code)
    return true
  })
}

const sortChanges = (changes: readonly Change[]): string[] => changes.map((change) => `${change.op} ${change.kind}/${change.key}`).sort()

export function storeContract(backend: string, makeBacking: MakeBacking, options: ContractOptions): void {
  const openStore = async (t: TestContextLike): Promise<{backing: StoreBacking; store: Store}> => {
    const backing = await makeBacking(t)
    const store = await backing.open()
    t.after(() => store.close())
    return {backing, store}
  }

  /** Create and enroll an identity; returns the record and its first certificate. */
  const enrolled = async (store: Store, name: string, overrides: Partial<NewIdentity> = {}) => {
    const input = newIdentity(name, overrides)
    const created = await store.createIdentity(input)
    const cert = certFor(created)
    const identity = await store.completeEnrollment(input.tokenId, cert, new Date())
    return {cert, identity, input}
  }

  test(`${backend} store: meta settings round-trip`, async (t) => {
    const {store} = await openStore(t)
    assert.equal(await store.getMeta('trust_domain'), undefined)
    await store.setMeta('trust_domain', 'example.org')
    await store.setMeta('ca_fingerprint', 'ab'.repeat(32))
    await store.setMeta('trust_domain', 'example.com')
    assert.equal(await store.getMeta('trust_domain'), 'example.com')
    assert.equal(await store.getMeta('ca_fingerprint'), 'ab'.repeat(32))
  })

  test(`${backend} store: settings written at once by two writers on a fresh store both land`, async (t) => {
    const {backing, store} = await openStore(t)
    const other = options.replicas ? await backing.open() : store
    if (other !== store) t.after(() => other.close())
    // Replicas that start together: each writes its first settings before the other has made the record.
    await Promise.all([store.setMeta('url', 'https://a.example:15012'), other.setMeta('trust_domain', 'example.org')])
    assert.equal(await other.getMeta('url'), 'https://a.example:15012')
    assert.equal(await store.getMeta('trust_domain'), 'example.org')
  })

  test(`${backend} store: identities are created pending, listed by name, names are unique`, async (t) => {
    const {store} = await openStore(t)
    const before = await store.currentVersion()
    const input = newIdentity('web', {roles: ['frontend'], scope: {node: 'node-a'}})
    const created = await store.createIdentity(input)
    assert.equal(created.status, 'pending')
    assert.equal(created.name, 'web')
    assert.deepEqual(created.roles, ['frontend'])
    assert.deepEqual(created.scope, {node: 'node-a'})
    assert.equal(created.id, input.id)
    assert.equal(created.tokenExpiresAt, input.tokenExpiresAt)
    await store.createIdentity(newIdentity('api'))
    assert.deepEqual((await store.listIdentities()).map((identity) => identity.name), ['api', 'web'])
    assert.equal((await store.getIdentity('web'))?.spiffe, input.spiffe)
    assert.equal(await store.getIdentity('nobody'), undefined)
    await rejectsWith(store.createIdentity(newIdentity('web')), 'ZT_ERR_NAME_TAKEN')

    // The identity's summary is part of the configuration agents receive.
    assert.ok((await store.currentVersion()) > before, 'creating identities bumps the version')
    const listing = await store.listResources('identity')
    assert.deepEqual(listing.items.map((item) => item.name).sort(), ['api', 'web'])
    assert.deepEqual(listing.items.find((item) => item.name === 'web'), {name: 'web', roles: ['frontend'], spiffe: input.spiffe})
    const found = await store.findToken(input.tokenId)
    assert.equal(found?.identity.name, 'web')
    assert.equal(found?.used, false)
    assert.equal(await store.findToken(randomUUID()), undefined)
  })

  test(`${backend} store: a token enrolls once; expired, unknown and deleted tokens are refused`, async (t) => {
    const {store} = await openStore(t)
    const {cert, identity, input} = await enrolled(store, 'db-1')
    assert.equal(identity.status, 'active')
    assert.ok(identity.enrolledAt)
    assert.equal((await store.findToken(input.tokenId))?.used, true)
    assert.equal((await store.authenticate(cert.serial, new Date()))?.identity.name, 'db-1')
    await rejectsWith(store.completeEnrollment(input.tokenId, certFor(identity), new Date()), 'ZT_ERR_TOKEN_USED')
    await rejectsWith(store.completeEnrollment(randomUUID(), certFor(identity), new Date()), 'ZT_ERR_TOKEN_INVALID')

    const late = newIdentity('late', {tokenExpiresAt: later(1000)})
    const lateRecord = await store.createIdentity(late)
    await rejectsWith(store.completeEnrollment(late.tokenId, certFor(lateRecord), new Date(Date.now() + 2000)), 'ZT_ERR_TOKEN_EXPIRED')

    const gone = newIdentity('gone')
    const goneRecord = await store.createIdentity(gone)
    await store.revokeIdentity('gone', new Date())
    await rejectsWith(store.completeEnrollment(gone.tokenId, certFor(goneRecord), new Date()), 'ZT_ERR_REVOKED')
    assert.equal((await store.findToken(gone.tokenId))?.identity.status, 'revoked')
  })

  test(`${backend} store: of ten concurrent enrollments with one token exactly one wins`, async (t) => {
    const {backing, store} = await openStore(t)
    const stores = [store]
    if (options.replicas) {
      const second = await backing.open()
      t.after(() => second.close())
      stores.push(second)
    }

    const input = newIdentity('contested')
    const record = await store.createIdentity(input)
    const certs = Array.from({length: 10}, () => certFor(record))
    const outcomes = await Promise.allSettled(certs.map((cert, index) => stores[index % stores.length].completeEnrollment(input.tokenId, cert, new Date())))
    const won = outcomes.filter((outcome) => outcome.status === 'fulfilled')
    assert.equal(won.length, 1, `exactly one enrollment succeeds (got ${won.length})`)
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected') assert.equal((outcome.reason as ZtError).code, 'ZT_ERR_TOKEN_USED')
    }

    // Only the winner's certificate authenticates.
    const winner = certs[outcomes.findIndex((outcome) => outcome.status === 'fulfilled')]
    const accepted = await Promise.all(certs.map(async (cert) => (await store.authenticate(cert.serial, new Date())) !== undefined))
    assert.deepEqual(accepted.filter(Boolean).length, 1)
    assert.ok(await store.authenticate(winner.serial, new Date()))
  })

  test(`${backend} store: renewed certificates authenticate until they expire`, async (t) => {
    const {store} = await openStore(t)
    const {cert, identity} = await enrolled(store, 'renewer')
    const renewed = certFor(identity, 2000)
    await store.recordCert(renewed)
    const principal = await store.authenticate(renewed.serial.toLowerCase(), new Date())
    assert.equal(principal?.identity.name, 'renewer')
    assert.equal(principal?.cert.serial, renewed.serial)
    assert.ok(await store.authenticate(cert.serial, new Date()), 'the first certificate still works')
    assert.equal(await store.authenticate(renewed.serial, new Date(Date.now() + 5000)), undefined, 'expired')
    assert.equal(await store.authenticate('00DEADBEEF', new Date()), undefined, 'unknown serial')
    const pending = await store.createIdentity(newIdentity('pending-one'))
    await rejectsWith(store.recordCert(certFor(pending)), 'ZT_ERR_REVOKED')
    // A workload certificate a node minted is recorded as the node's, and never authenticates to the API.
    const minted = certFor(identity, HOUR, 'spiffe://cluster.local/ns/prod/sa/payments')
    await store.recordCert(minted)
    assert.equal(await store.authenticate(minted.serial, new Date()), undefined, 'a workload certificate is no API credential')
  })

  test(`${backend} store: revocation is one revision, refuses at once and frees the name`, async (t) => {
    const {store} = await openStore(t)
    const {cert, identity} = await enrolled(store, 'victim')
    const renewed = certFor(identity)
    await store.recordCert(renewed)
    const expired = certFor(identity, -1000)
    await store.recordCert(expired)
    const minted = certFor(identity, HOUR, 'spiffe://cluster.local/ns/prod/sa/payments')
    await store.recordCert(minted)
    const before = await store.currentVersion()

    // No observer may ever see half a revocation: the identity gone but its serials not yet revoked.
    const seen: {hasIdentity: boolean; revoked: number; version: number}[] = []
    const observing: Promise<void>[] = []
    const unsubscribe = store.onCommit(() => {
      observing.push(store.snapshot().then(({resources, version}) => {
        seen.push({hasIdentity: 'victim' in resources.identity, revoked: Object.values(resources.revocation).filter((r) => r.identity === 'victim').length, version})
      }))
    })
    const result = await store.revokeIdentity('victim', new Date())
    await waitUntil('the commit of the revocation', async () => (seen.some((entry) => entry.version >= result.version) ? true : undefined))
    unsubscribe()
    await Promise.all(observing)
    for (const entry of seen) assert.ok(entry.hasIdentity === (entry.revoked === 0), `version ${entry.version} shows half a revocation`)

    assert.equal(result.identity.status, 'revoked')
    assert.ok(result.identity.revokedAt)
    assert.deepEqual(result.revoked.map((c) => c.serial).sort(), [cert.serial, renewed.serial, minted.serial].sort(), 'the unexpired serials, of both usages')
    assert.ok(result.version > before)
    const delta = await store.changesSince(before)
    assert.ok(delta, 'the change log reaches back')
    assert.equal(delta.version, result.version)
    assert.deepEqual(sortChanges(delta.changes), sortChanges([
      {key: 'victim', kind: 'identity', op: 'delete'},
      ...[cert, renewed, minted].map((c): Change => ({key: c.serial, kind: 'revocation', op: 'put', value: {identity: 'victim', notAfter: c.notAfter, serial: c.serial, spiffe: c.spiffe}})),
    ]))
    assert.equal(delta.changes.find((change) => change.key === minted.serial && change.op === 'put')?.op, 'put')
    const mintedRevocation = (await store.listResources('revocation')).items.find((item) => item.serial === minted.serial)
    assert.equal(mintedRevocation?.spiffe, 'spiffe://cluster.local/ns/prod/sa/payments', 'a minted certificate is revoked under its own SPIFFE ID')
    const revocations = await store.listResources('revocation')
    assert.deepEqual(revocations.items.find((item) => item.serial === cert.serial), {identity: 'victim', notAfter: cert.notAfter, serial: cert.serial, spiffe: identity.spiffe})

    assert.equal(await store.authenticate(cert.serial, new Date()), undefined)
    assert.equal(await store.authenticate(renewed.serial, new Date()), undefined)
    assert.equal(await store.getIdentity('victim'), undefined)
    assert.deepEqual((await store.listIdentities()).map((i) => i.name), [])
    await rejectsWith(store.revokeIdentity('victim', new Date()), 'ZT_ERR_NOT_FOUND')
    await rejectsWith(store.revokeIdentity('never-was', new Date()), 'ZT_ERR_NOT_FOUND')

    // The name can be used again; the new identity is another one, the old serials stay revoked.
    const again = await enrolled(store, 'victim')
    assert.notEqual(again.identity.id, identity.id)
    assert.ok(await store.authenticate(again.cert.serial, new Date()))
    assert.equal(await store.authenticate(cert.serial, new Date()), undefined)
    assert.ok((await store.listResources('revocation')).items.some((item) => item.serial === cert.serial))
  })

  test(`${backend} store: resources put, list, delete; an unchanged put keeps the version`, async (t) => {
    const {store} = await openStore(t)
    const v0 = await store.currentVersion()
    const v1 = await store.putResource('policy', 'allow-db', policy('allow-db'))
    assert.ok(v1 > v0)
    assert.equal(await store.putResource('policy', 'allow-db', policy('allow-db')), v1, 'same value: same version')
    const v2 = await store.putResource('policy', 'allow-db', policy('allow-db', 6432))
    assert.ok(v2 > v1)
    const tunnel = {agent: 'agent-a', allow: ['@web'], service: 'tcp/db', targets: [{host: '127.0.0.1', port: 5432}]}
    const v3 = await store.putResource('outbound', 'tcp/db@agent-a', tunnel)
    const inbound = {agent: 'agent-b', listen: '127.0.0.1:7000', service: 'tcp/db'}
    const v4 = await store.putResource('inbound', 'tcp/db@agent-b', inbound)
    assert.ok(v4 > v3 && v3 > v2)
    assert.deepEqual((await store.listResources('outbound')).items, [tunnel])
    assert.deepEqual(await store.getResource('outbound', 'tcp/db@agent-a'), tunnel)
    assert.equal(await store.getResource('outbound', 'tcp/db@agent-z'), undefined)
    const policies = await store.listResources('policy')
    assert.deepEqual(policies.items, [policy('allow-db', 6432)])
    assert.equal(policies.version, v4)
    const snapshot = await store.snapshot()
    assert.equal(snapshot.version, v4)
    assert.deepEqual(snapshot.resources.inbound['tcp/db@agent-b'], inbound)
    assert.deepEqual(snapshot.resources.policy['allow-db'], policy('allow-db', 6432))

    const v5 = await store.deleteResource('policy', 'allow-db')
    assert.ok(v5 > v4)
    assert.deepEqual((await store.listResources('policy')).items, [])
    await rejectsWith(store.deleteResource('policy', 'allow-db'), 'ZT_ERR_NOT_FOUND')
    assert.equal(await store.currentVersion(), v5)
  })

  test(`${backend} store: getResource reads one resource by key, also one another replica just wrote`, async (t) => {
    const {backing, store} = await openStore(t)
    const other = options.replicas ? await backing.open() : store
    if (other !== store) t.after(() => other.close())
    await store.putResource('policy', 'allow-db', policy('allow-db'))
    await store.putResource('policy', 'allow-web', policy('allow-web', 80))
    assert.deepEqual(await other.getResource('policy', 'allow-web'), policy('allow-web', 80))
    assert.equal(await other.getResource('policy', 'nope'), undefined)
    assert.equal(await other.getResource('outbound', 'allow-db'), undefined, 'keys are per kind')
    await store.deleteResource('policy', 'allow-web')
    assert.equal(await other.getResource('policy', 'allow-web'), undefined)
    // What it returns is a copy: changing it changes nothing stored.
    const read = await other.getResource('policy', 'allow-db')
    read!.ports.push(1)
    assert.deepEqual(await other.getResource('policy', 'allow-db'), policy('allow-db'))
  })

  test(`${backend} store: changesSince gives the deltas in order, or undefined when it cannot`, async (t) => {
    const {store} = await openStore(t)
    const start = await store.currentVersion()
    const v1 = await store.putResource('policy', 'p1', policy('p1'))
    await store.putResource('policy', 'p2', policy('p2'))
    await store.putResource('policy', 'p1', policy('p1', 1))
    const last = await store.deleteResource('policy', 'p2')
    const all = await store.changesSince(start)
    assert.ok(all)
    assert.equal(all.version, last)
    // Replaying the deltas on the state before gives the state after.
    const replayed: Record<string, unknown> = {}
    for (const change of all.changes) {
      if (change.kind !== 'policy') continue
      if (change.op === 'delete') delete replayed[change.key]
      else replayed[change.key] = change.value
    }

    assert.deepEqual(replayed, {p1: policy('p1', 1)})
    const fromV1 = await store.changesSince(v1)
    assert.ok(fromV1)
    assert.ok(!fromV1.changes.some((change) => change.op === 'put' && change.kind === 'policy' && change.key === 'p1' && (change.value as Policy).ports[0] === 5432), 'nothing from before v1')
    assert.deepEqual(await store.changesSince(last), {changes: [], version: last})
    for (const garbage of [-1, 1.5, Number.NaN, last + 1_000_000_000]) assert.equal(await store.changesSince(garbage), undefined, `since ${garbage}`)
  })

  test(`${backend} store: onCommit hears every commit until unsubscribed`, async (t) => {
    const {store} = await openStore(t)
    const heard: number[] = []
    const unsubscribe = store.onCommit((version) => heard.push(version))
    const v1 = await store.putResource('policy', 'p', policy('p'))
    const {input} = await enrolled(store, 'listener')
    assert.ok(input)
    const v3 = await store.deleteResource('policy', 'p')
    await waitUntil('the delete to be heard', async () => (heard.includes(v3) ? true : undefined))
    assert.ok(heard.includes(v1))
    assert.deepEqual([...heard].sort((a, b) => a - b), heard, 'in order')
    unsubscribe()
    const count = heard.length
    await store.putResource('policy', 'q', policy('q'))
    await new Promise((resolve) => setTimeout(resolve, 100))
    assert.equal(heard.length, count, 'nothing after unsubscribing')
  })

  test(`${backend} store: versions strictly increase and are never reused across a reopen`, async (t) => {
    const {backing, store} = await openStore(t)
    const versions = [await store.currentVersion()]
    for (let index = 0; index < 3; index++) versions.push(await store.putResource('policy', `p${index}`, policy(`p${index}`)))
    await store.close()
    const reopened = await backing.open()
    t.after(() => reopened.close())
    const after = await reopened.currentVersion()
    assert.ok(after >= versions.at(-1)!, 'the version survives a restart')
    assert.deepEqual((await reopened.listResources('policy')).items.map((p) => p.name), ['p0', 'p1', 'p2'])
    const next = await reopened.putResource('policy', 'p3', policy('p3'))
    assert.ok(next > after)
    for (let index = 1; index < versions.length; index++) assert.ok(versions[index] > versions[index - 1])
    const resumed = await reopened.changesSince(versions[1])
    if (resumed) assert.deepEqual(resumed.changes.filter((c) => c.kind === 'policy').map((c) => c.key).sort(), ['p1', 'p2', 'p3'])
  })

  test(`${backend} store: agent status keeps the acked version across partial updates`, async (t) => {
    const {store} = await openStore(t)
    await store.recordAgentStatus({ackedVersion: 7, lastSeen: '2030-01-01T00:00:00.000Z', name: 'agent-a'})
    await store.recordAgentStatus({lastSeen: '2030-01-01T00:00:05.000Z', name: 'agent-a'})
    await store.recordAgentStatus({lastSeen: '2030-01-01T00:00:01.000Z', name: 'agent-b'})
    const statuses = await store.listAgentStatus()
    assert.deepEqual(statuses.map(({ackedVersion, lastSeen, name}) => ({ackedVersion, lastSeen, name})), [
      {ackedVersion: 7, lastSeen: '2030-01-01T00:00:05.000Z', name: 'agent-a'},
      {ackedVersion: undefined, lastSeen: '2030-01-01T00:00:01.000Z', name: 'agent-b'},
    ])
    const before = await store.currentVersion()
    await store.recordAgentStatus({ackedVersion: 9, name: 'agent-a'})
    assert.equal(await store.currentVersion(), before, 'agent status is not configuration')
  })

  test(`${backend} store: sweepExpired drops revocations of expired certificates`, async (t) => {
    const {store} = await openStore(t)
    const {cert, identity} = await enrolled(store, 'short-lived')
    const long = certFor(identity, 10 * HOUR)
    await store.recordCert(long)
    const {version} = await store.revokeIdentity('short-lived', new Date())
    assert.equal(await store.sweepExpired(new Date()), version, 'nothing expired yet: same version')
    const swept = await store.sweepExpired(new Date(Date.now() + 2 * HOUR))
    assert.ok(swept > version)
    const serials = (await store.listResources('revocation')).items.map((item) => item.serial)
    assert.ok(!serials.includes(cert.serial), 'the expired one is gone')
    assert.ok(serials.includes(long.serial), 'the unexpired one stays')
  })

  if (options.replicas) {
    test(`${backend} store: a second replica sees the first one's commits`, async (t) => {
      const {backing, store} = await openStore(t)
      const replica = await backing.open()
      t.after(() => replica.close())
      const heard: number[] = []
      replica.onCommit((version) => heard.push(version))
      const since = await replica.currentVersion()
      const version = await store.putResource('policy', 'shared', policy('shared'))
      await waitUntil('the replica to hear the commit', async () => (heard.some((v) => v >= version) ? true : undefined))
      assert.deepEqual((await replica.listResources('policy')).items, [policy('shared')])
      assert.deepEqual(await replica.getResource('policy', 'shared'), policy('shared'), 'a read by key on the replica sees the commit too')
      const delta = await replica.changesSince(since)
      assert.ok(delta)
      assert.deepEqual(delta.changes.filter((c) => c.kind === 'policy'), [{key: 'shared', kind: 'policy', op: 'put', value: policy('shared')}])
      // An agent resuming on the replica from the version the first store returned gets nothing twice.
      assert.deepEqual((await replica.changesSince(version))?.changes, [])
      const {cert} = await enrolled(store, 'cross')
      assert.equal((await replica.authenticate(cert.serial, new Date()))?.identity.name, 'cross', 'a certificate recorded on one replica authenticates on the other at once')
      await store.revokeIdentity('cross', new Date())
      assert.equal(await replica.authenticate(cert.serial, new Date()), undefined, 'and a revocation on one is refused on the other at once')
    })
  }
}

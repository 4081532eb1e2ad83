// Revocation, renewal, restart and kill -9 against real controller processes and real SQLite files.
import assert from 'node:assert/strict'
import {once} from 'node:events'
import path from 'node:path'
import {DatabaseSync} from 'node:sqlite'
import {test} from 'node:test'

import {ControllerClient} from '../../src/lib/client/controller-client.js'
import {CertificateRenewer} from '../../src/lib/client/renew.js'
import {type IdentityFile, readIdentityFile} from '../../src/lib/identity/file.js'
import {certInfo} from '../../src/lib/pki/cert-info.js'
import {startTestController, type TestController} from '../helpers/controller.js'

async function enrollVia(ctl: TestController, name: string, ...roles: string[]): Promise<IdentityFile> {
  const created = await ctl.run(['identity', 'create', name, ...roles.flatMap((role) => ['-a', role])])
  assert.equal(created.code, 0, created.stderr)
  const enrolled = await ctl.run(['enroll', path.join(ctl.home, `${name}.jwt`), '--force'])
  assert.equal(enrolled.code, 0, enrolled.stderr)
  return readIdentityFile(path.join(ctl.home, `${name}.json`))
}

async function adminClient(t: {after(fn: () => void): void}, ctl: TestController): Promise<ControllerClient> {
  const client = ControllerClient.fromIdentity({...(await readIdentityFile(ctl.adminIdentityPath)), controller: ctl.url})
  t.after(() => client.close())
  return client
}

test('revocation: refused at once, serials become revocation resources, name reusable', async (t) => {
  const ctl = await startTestController(t)
  const identity = await enrollVia(ctl, 'victim', 'db')
  const victim = ControllerClient.fromIdentity(identity)
  t.after(() => victim.close())
  const csr = (await import('../../src/lib/pki/pki.js')).createKeyAndCsr
  // Works before, on a session that stays open across the revocation.
  await victim.request('POST', '/v1/renew', {csr: (await csr('victim')).csrPem})
  const admin = await adminClient(t, ctl)
  const identities = await admin.request<{items: {name: string}[]}>('GET', '/v1/resources/identity')
  assert.ok(identities.items.some((item) => item.name === 'victim'))

  const deleted = await ctl.run(['identity', 'delete', 'victim'])
  assert.equal(deleted.code, 0, deleted.stderr)
  await assert.rejects(victim.request('POST', '/v1/renew', {csr: (await csr('victim')).csrPem}), {code: 'ZT_ERR_UNAUTHORIZED'})

  const revocations = await admin.request<{items: {identity: string; serial: string}[]}>('GET', '/v1/resources/revocation')
  assert.ok(revocations.items.some((item) => item.serial === certInfo(identity.cert).serial && item.identity === 'victim'))
  assert.equal(revocations.items.filter((item) => item.identity === 'victim').length, 2, 'the enrolled and the renewed certificate')
  const after = await admin.request<{items: {name: string}[]}>('GET', '/v1/resources/identity')
  assert.ok(!after.items.some((item) => item.name === 'victim'))
  assert.equal((await ctl.run(['identity', 'show', 'victim'])).code, 3)

  const again = await enrollVia(ctl, 'victim')
  assert.notEqual(certInfo(again.cert).serial, certInfo(identity.cert).serial)
})

test('renewal at half-life with a short TTL; the old certificate serves until then', async (t) => {
  const ctl = await startTestController(t, {extraArgs: ['--cert-ttl', '4s']})
  const file = path.join(ctl.home, 'short.json')
  const first = await enrollVia(ctl, 'short')
  const renewer = new CertificateRenewer(first, {file, minBackoffMs: 200})
  t.after(() => renewer.stop())
  const renewed = once(renewer, 'renewed')
  renewer.start()
  assert.equal(renewer.identity.cert, first.cert, 'the old certificate serves until a new one arrives')
  const [next] = (await renewed) as [IdentityFile]
  // Half-life of a 4 s certificate: 2 s before it expires (the pki back-dates notBefore by a minute).
  const halfLife = certInfo(first.cert).notAfter.getTime() - 2000
  assert.ok(Date.now() >= halfLife - 100, 'not renewed before half-life')
  assert.notEqual(certInfo(next.cert).serial, certInfo(first.cert).serial)
  assert.equal(certInfo(next.cert).spiffe, certInfo(first.cert).spiffe)
  assert.notEqual(next.key, first.key, 'a fresh key each renewal')
  assert.equal((await readIdentityFile(file)).cert, next.cert, 'the identity file was rewritten')
  assert.equal(renewer.storage, 'file', 'a writable file holds the renewed certificate')
  // Both certificates are accepted until the old one expires.
  for (const identity of [first, next]) {
    const client = ControllerClient.fromIdentity(identity)
    t.after(() => client.close())
    const {createKeyAndCsr} = await import('../../src/lib/pki/pki.js')
    await client.request('POST', '/v1/renew', {csr: (await createKeyAndCsr('short')).csrPem})
  }
})

test('a restart keeps every identity', async (t) => {
  const ctl = await startTestController(t)
  const web = await enrollVia(ctl, 'web', 'frontend')
  assert.equal((await ctl.run(['identity', 'create', 'pending-one'])).code, 0)
  const before = JSON.parse((await ctl.run(['identity', 'list', '-o', 'json'])).stdout)
  await ctl.restart()
  const after = JSON.parse((await ctl.run(['identity', 'list', '-o', 'json'])).stdout)
  assert.deepEqual(after, before)
  // The enrolled identity still authenticates, and the pending token still enrolls.
  const client = ControllerClient.fromIdentity(web)
  t.after(() => client.close())
  const {createKeyAndCsr} = await import('../../src/lib/pki/pki.js')
  await client.request('POST', '/v1/renew', {csr: (await createKeyAndCsr('web')).csrPem})
  assert.equal((await ctl.run(['enroll', path.join(ctl.home, 'pending-one.jwt')])).code, 0)
})

test('kill -9 during a burst of writes leaves a consistent store with every acknowledged write', async (t) => {
  const ctl = await startTestController(t)
  const admin = await adminClient(t, ctl)
  const acknowledged: string[] = []
  let killed = false
  const burst = Array.from({length: 200}, async (_, index) => {
    const name = `burst-${index}`
    try {
      await admin.request('POST', '/v1/identities', {name, roles: ['burst']})
      acknowledged.push(name)
      if (acknowledged.length === 60 && !killed) {
        killed = true
        await ctl.kill9()
      }
    } catch (error) {
      assert.ok(killed, `a write failed before the kill: ${(error as Error).message}`)
    }
  })
  await Promise.all(burst)
  assert.ok(killed, 'the controller was killed mid-burst')
  assert.ok(acknowledged.length >= 60 && acknowledged.length < 200, `acknowledged ${acknowledged.length}`)
  admin.close()

  const db = new DatabaseSync(path.join(ctl.dataDir, 'store.db'))
  assert.equal((db.prepare('PRAGMA integrity_check').get() as {integrity_check: string}).integrity_check, 'ok')
  db.close()

  await ctl.restart()
  const listed = JSON.parse((await ctl.run(['identity', 'list', '-o', 'json'])).stdout) as {name: string}[]
  const names = new Set(listed.map((identity) => identity.name))
  for (const name of acknowledged) assert.ok(names.has(name), `${name} was acknowledged but is missing`)
  const admin2 = await adminClient(t, ctl)
  const resources = await admin2.request<{items: {name: string}[]; version: number}>('GET', '/v1/resources/identity')
  assert.equal(resources.items.length, listed.length, 'identity resources match identities')
})

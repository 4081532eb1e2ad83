// The credential lifecycle against a real controller: an admin certificate renews on use past half-life;
// once expired, the error's own suggestion (run for real) recovers it; the last admin cannot be deleted
// and deleting yourself needs --yes without a terminal; contexts like kubeconfig; tokens through pipes.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'
import {setTimeout as sleep} from 'node:timers/promises'

import {certInfo} from '../../src/lib/pki/cert-info.js'
import {RUN_JS, startTestController} from '../helpers/controller.js'

const ADMIN_TTL_SECONDS = 16

async function adminCert(file: string): Promise<{notAfter: Date; serial: string}> {
  const identity = JSON.parse(await readFile(file, 'utf8')) as {cert: string}
  return certInfo(identity.cert)
}

test('an admin certificate renews on use before expiry; after expiry the suggested command recovers it', async (t) => {
  const ctl = await startTestController(t, {extraArgs: ['--admin-cert-ttl', `${ADMIN_TTL_SECONDS}s`]})
  const first = await adminCert(ctl.adminIdentityPath)
  assert.ok(first.notAfter.getTime() - Date.now() <= ADMIN_TTL_SECONDS * 1000, 'the admin TTL flag is used')

  // Past half-life, a command renews the certificate on its way.
  await sleep(first.notAfter.getTime() - Date.now() - (ADMIN_TTL_SECONDS * 1000) / 2 + 500)
  const used = await ctl.run(['identity', 'list', '-o', 'json'])
  assert.equal(used.code, 0, used.stderr)
  const renewed = await adminCert(ctl.adminIdentityPath)
  assert.notEqual(renewed.serial, first.serial)
  assert.ok(renewed.notAfter > first.notAfter)

  // Unused for a whole TTL: locked out, with the way back in the error.
  await sleep(Math.max(0, renewed.notAfter.getTime() - Date.now() + 500))
  const expired = await ctl.run(['identity', 'list'])
  assert.equal(expired.code, 4, expired.stderr)
  assert.match(expired.stderr, /Error \(ZT_ERR_CERT_EXPIRED\): the certificate of identity "admin" \(context "local"\) expired/)
  const suggested = /`(ztctl controller admin [^`]+)`/.exec(expired.stderr)?.[1]
  assert.ok(suggested, expired.stderr)
  assert.ok(suggested.includes(`--data-dir ${ctl.dataDir}`), suggested)
  // Run exactly what the error says (the controller keeps running meanwhile).
  const recovered = await ctl.run(suggested.split(' ').slice(1))
  assert.equal(recovered.code, 0, recovered.stderr)
  assert.match(recovered.stdout, /Admin identity admin re-issued/)
  const back = await ctl.run(['identity', 'list', '-o', 'json'])
  assert.equal(back.code, 0, back.stderr)
  assert.ok((JSON.parse(back.stdout) as {name: string}[]).some((identity) => identity.name === 'admin'))
  // Renewal keeps the identity (same id), and the default admin TTL outlives a weekend.
  const restored = await adminCert(ctl.adminIdentityPath)
  assert.ok(restored.notAfter.getTime() - Date.now() > 7 * 86_400_000, 'controller admin issues a 30-day certificate by default')
})

test('the last admin cannot be deleted; deleting yourself needs --yes; contexts and tokens through pipes', async (t) => {
  const ctl = await startTestController(t)
  const refused = await ctl.run(['identity', 'delete', 'admin', '--yes'])
  assert.equal(refused.code, 6, refused.stderr)
  assert.match(refused.stderr, /ZT_ERR_LAST_ADMIN/)

  // A second admin: the token goes to stdout alone (--out -) and comes back through `enroll -`.
  const token = await ctl.run(['identity', 'create', 'alice', '--admin', '--out', '-'])
  assert.equal(token.code, 0, token.stderr)
  assert.match(token.stdout.trim(), /^[\w-]+\.[\w-]+\.[\w-]+$/, 'stdout carries the JWT alone')
  assert.match(token.stderr, /New identity alice created/)
  const enrolled = spawnSync(process.execPath, [RUN_JS, 'enroll', '-', '--out', path.join(ctl.home, 'alice.json'), '--context', 'alice'], {
    cwd: ctl.home, encoding: 'utf8', env: ctl.env, input: token.stdout,
  })
  assert.equal(enrolled.status, 0, enrolled.stderr)
  assert.match(enrolled.stdout, /Context "alice" written/)
  const asAlice = await ctl.run(['identity', 'list', '--context', 'alice', '-o', 'json'])
  assert.equal(asAlice.code, 0, asAlice.stderr)

  // -o stays the output format: `identity create -o json` writes NAME.jwt, not a file named json.
  const json = await ctl.run(['identity', 'create', 'bob', '--admin', '-o', 'json'])
  assert.equal(json.code, 0, json.stderr)
  assert.equal(JSON.parse(json.stdout).jwtPath, path.join(ctl.home, 'bob.jwt'))

  // Deleting the identity of the context in use: refused without a terminal unless --yes.
  const self = await ctl.run(['identity', 'delete', 'alice', '--context', 'alice'])
  assert.equal(self.code, 2, self.stderr)
  assert.match(self.stderr, /ZT_ERR_CONFIRMATION_REQUIRED\): "alice" is the identity of context "alice"/)
  assert.match(self.stderr, /pass --yes/)
  assert.equal((await ctl.run(['identity', 'delete', 'alice', '--context', 'alice', '--yes'])).code, 0)
  assert.equal((await ctl.run(['identity', 'delete', 'bob'])).code, 0, 'bob never enrolled: deleting another identity needs no --yes')

  // Contexts: add, rename, delete.
  const added = await ctl.run(['context', 'add', 'lab', '--identity', ctl.adminIdentityPath])
  assert.equal(added.code, 0, added.stderr)
  assert.equal((await ctl.run(['context', 'add', 'lab', '--identity', ctl.adminIdentityPath])).code, 6)
  assert.equal((await ctl.run(['context', 'rename', 'lab', 'lab2'])).code, 0)
  assert.equal((await ctl.run(['identity', 'list', '--context', 'lab2'])).code, 0)
  assert.equal((await ctl.run(['context', 'delete', 'lab2'])).code, 0)
  assert.equal((await ctl.run(['context', 'delete', 'lab2'])).code, 3)
  const list = JSON.parse((await ctl.run(['context', 'list', '-o', 'json'])).stdout) as {current: boolean; name: string}[]
  assert.deepEqual(list.map((context) => context.name).sort(), ['alice', 'local'])
})

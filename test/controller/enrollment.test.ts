// Enrollment against a real controller process: the happy path and every error the issue lists.
import assert from 'node:assert/strict'
import {access, readFile, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'

import {ControllerClient} from '../../src/lib/client/controller-client.js'
import {enroll} from '../../src/lib/client/enroll.js'
import {readIdentityFile} from '../../src/lib/identity/file.js'
import {certInfo} from '../../src/lib/pki/cert-info.js'
import {startTestController} from '../helpers/controller.js'

const exists = (file: string): Promise<boolean> => access(file).then(() => true, () => false)

test('enrollment, end to end and its errors', async (t) => {
  const ctl = await startTestController(t)

  const createToken = async (name: string, ...extra: string[]): Promise<string> => {
    const result = await ctl.run(['identity', 'create', name, ...extra])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, new RegExp(`New identity ${name} created with id: [0-9a-f-]{36}`))
    assert.match(result.stdout, /Enrollment expires at \d{4}-\d\d-\d\dT/)
    return path.join(ctl.home, `${name}.jwt`)
  }

  await t.test('enroll writes a working 0600 identity file and deletes the token', async () => {
    const jwt = await createToken('web', '-a', 'frontend')
    assert.equal((await stat(jwt)).mode & 0o777, 0o600)
    const result = await ctl.run(['enroll', jwt])
    assert.equal(result.code, 0, result.stderr)
    const file = path.join(ctl.home, 'web.json')
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    assert.equal(await exists(jwt), false, 'the JWT is deleted on success')
    const identity = await readIdentityFile(file)
    assert.equal(identity.spiffe, 'spiffe://cluster.local/identity/web')
    assert.equal(certInfo(identity.cert).spiffe, identity.spiffe)
    assert.equal(identity.controller, ctl.url)
    // The identity authenticates: /v1/renew needs an active identity's client certificate.
    const client = ControllerClient.fromIdentity(identity)
    t.after(() => client.close())
    const renewed = await client.request<{cert: string}>('POST', '/v1/renew', {csr: (await import('../../src/lib/pki/pki.js').then((pki) => pki.createKeyAndCsr('web'))).csrPem})
    assert.equal(certInfo(renewed.cert).spiffe, identity.spiffe)
    // ...but it is not an admin.
    await assert.rejects(client.request('GET', '/v1/identities'), {code: 'ZT_ERR_FORBIDDEN'})
  })

  await t.test('a token works once', async () => {
    const jwt = await createToken('once')
    const copy = path.join(ctl.home, 'once-copy.jwt')
    await writeFile(copy, await readFile(jwt))
    assert.equal((await ctl.run(['enroll', jwt])).code, 0)
    const second = await ctl.run(['enroll', copy, '--out', path.join(ctl.home, 'once-2.json')])
    assert.equal(second.code, 6)
    assert.match(second.stderr, /ZT_ERR_TOKEN_USED/)
    assert.match(second.stderr, /already used/)
    assert.equal(await exists(copy), true, 'a failed enrollment keeps the token')
  })

  await t.test('an expired token fails before any request (controller stopped)', async () => {
    const jwt = await createToken('late', '--expires', '1s')
    await new Promise((resolve) => setTimeout(resolve, 2100))
    await ctl.stop()
    try {
      const result = await ctl.run(['enroll', jwt])
      assert.equal(result.code, 4)
      assert.match(result.stderr, /ZT_ERR_TOKEN_EXPIRED/)
      assert.match(result.stderr, /expired at/)
    } finally {
      await ctl.restart()
    }
  })

  await t.test('a tampered token is refused', async () => {
    const jwt = await createToken('tamper')
    const [header, payload, signature] = (await readFile(jwt, 'utf8')).trim().split('.')
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString())
    claims.roles = ['admin-ish']
    await writeFile(jwt, `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`)
    const result = await ctl.run(['enroll', jwt])
    assert.equal(result.code, 4)
    assert.match(result.stderr, /ZT_ERR_TOKEN_INVALID/)
    assert.match(result.stderr, /altered/)

    await writeFile(jwt, 'not a token at all\n')
    const garbage = await ctl.run(['enroll', jwt])
    assert.equal(garbage.code, 4)
    assert.match(garbage.stderr, /ZT_ERR_TOKEN_INVALID/)
  })

  await t.test('a token of another controller is refused', async (tt) => {
    const other = await startTestController(tt)
    const result = await other.run(['identity', 'create', 'stranger'])
    assert.equal(result.code, 0, result.stderr)
    const jwt = path.join(other.home, 'stranger.jwt')
    // The other controller goes away and ours takes over its address: the CA pin tells them apart.
    const port = other.port
    await other.stop()
    const impostor = await startTestController(tt, {port})
    const enrolled = await impostor.run(['enroll', jwt])
    assert.equal(enrolled.code, 4)
    assert.match(enrolled.stderr, /ZT_ERR_TOKEN_WRONG_CONTROLLER/)
    assert.match(enrolled.stderr, /another controller/)
  })

  await t.test('controller unreachable names the URL', async (tt) => {
    const other = await startTestController(tt)
    assert.equal((await other.run(['identity', 'create', 'lost'])).code, 0)
    await other.stop()
    const result = await other.run(['enroll', path.join(other.home, 'lost.jwt')])
    assert.equal(result.code, 5)
    assert.match(result.stderr, /ZT_ERR_CONTROLLER_UNREACHABLE/)
    assert.ok(result.stderr.includes(other.url), result.stderr)
    await assert.rejects(enroll({jwtPath: path.join(other.home, 'lost.jwt'), timeoutMs: 2000}), {code: 'ZT_ERR_CONTROLLER_UNREACHABLE'})
  })

  await t.test('name taken and invalid name', async () => {
    await createToken('dup')
    const again = await ctl.run(['identity', 'create', 'dup'])
    assert.equal(again.code, 6)
    assert.match(again.stderr, /ZT_ERR_NAME_TAKEN/)
    for (const bad of ['Bad_Name', 'x-', 'a'.repeat(64), 'x/y']) {
      const result = await ctl.run(['identity', 'create', bad])
      assert.equal(result.code, 2, `${bad}: ${result.stderr}`)
      assert.match(result.stderr, /ZT_ERR_INVALID_NAME/)
    }

    // The server checks names too (an API caller skips the CLI's check).
    const admin = ControllerClient.fromIdentity(await readIdentityFile(ctl.adminIdentityPath))
    t.after(() => admin.close())
    await assert.rejects(admin.request('POST', '/v1/identities', {name: 'NOPE'}), {code: 'ZT_ERR_INVALID_NAME'})
  })
})

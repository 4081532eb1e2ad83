// The controller impostor of issue 11: an enrolled agent holds a certificate of the mesh CA, so a server
// using it passes "issued by the pinned CA". Here such an impostor (a TLS + HTTP/2 server written for the
// test, with that agent's real certificate and the CA in its chain, exactly what the attack used) takes
// over the controller's address. `ztctl enroll` of an admin token must send it nothing and say why; the
// token stays unspent and works once the real controller is back. Every other CLI call pins the
// controller's SPIFFE ID the same way.
import assert from 'node:assert/strict'
import {access, readFile} from 'node:fs/promises'
import http2 from 'node:http2'
import path from 'node:path'
import {test} from 'node:test'

import {readIdentityFile} from '../../src/lib/identity/file.js'
import {startTestController} from '../helpers/controller.js'

const exists = (file: string): Promise<boolean> => access(file).then(() => true, () => false)

test('an impostor with a valid mesh certificate gets no token, and enroll says why', async (t) => {
  const ctl = await startTestController(t)
  assert.equal((await ctl.run(['identity', 'create', 'rogue'])).code, 0)
  assert.equal((await ctl.run(['enroll', path.join(ctl.home, 'rogue.jwt')])).code, 0)
  const rogue = await readIdentityFile(path.join(ctl.home, 'rogue.json'))
  const created = await ctl.run(['identity', 'create', 'boss', '--admin'])
  assert.equal(created.code, 0, created.stderr)
  const bossJwt = path.join(ctl.home, 'boss.jwt')

  // The controller goes away; the agent's certificate answers at its address.
  const port = ctl.port
  await ctl.stop()
  const seen: string[] = []
  const impostor = http2.createSecureServer({allowHTTP1: true, cert: rogue.cert + rogue.ca, key: rogue.key}, (request, response) => {
    let body = ''
    request.on('data', (chunk: Buffer) => (body += chunk.toString()))
    request.on('end', () => {
      seen.push(`${request.method} ${request.url} ${body}`)
      response.writeHead(200, {'content-type': 'application/json'}).end('{}')
    })
  })
  await new Promise<void>((resolve, reject) => {
    impostor.once('error', reject)
    impostor.listen(port, '127.0.0.1', resolve)
  })

  try {
    const enrolled = await ctl.run(['enroll', bossJwt])
    assert.equal(enrolled.code, 4, enrolled.stderr)
    assert.match(enrolled.stderr, /ZT_ERR_CONTROLLER_IMPOSTOR/)
    assert.match(enrolled.stderr, /is not the controller/)
    assert.ok(enrolled.stderr.includes(rogue.spiffe), `names what the server presented: ${enrolled.stderr}`)
    assert.ok(enrolled.stderr.includes('spiffe://cluster.local/controller'), 'names what was expected')
    assert.match(enrolled.stderr, /Nothing was sent/)
    assert.deepEqual(seen, [], 'the impostor received no request at all, so no token')
    assert.equal(await exists(bossJwt), true, 'the token is kept')
    assert.equal(await exists(path.join(ctl.home, 'boss.json')), false)

    // The admin CLI pins the controller too: it sends its request to no impostor either.
    const listed = await ctl.run(['identity', 'list'])
    assert.equal(listed.code, 4, listed.stderr)
    assert.match(listed.stderr, /ZT_ERR_CONTROLLER_IMPOSTOR/)
    assert.deepEqual(seen, [])
  } finally {
    await new Promise<void>((resolve) => impostor.close(() => resolve()))
  }

  // The real controller is back: the unspent token enrolls.
  await ctl.restart()
  const enrolled = await ctl.run(['enroll', bossJwt])
  assert.equal(enrolled.code, 0, enrolled.stderr)
  const boss = JSON.parse(await readFile(path.join(ctl.home, 'boss.json'), 'utf8')) as {spiffe: string}
  assert.equal(boss.spiffe, 'spiffe://cluster.local/identity/boss')
})

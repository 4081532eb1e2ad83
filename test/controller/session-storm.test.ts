// A reconnect storm against the controller's session bounds: every agent of a cluster comes back at once
// after a controller restart, and each session counts as idle from its handshake until its first stream is
// read. Sessions whose peer presented a certificate of our CA are capped apart from anonymous ones, so 300
// agents that connect before any of them opens a stream all get answered, while anonymous peers stay capped
// at 128 idle sessions (CONTROLLER_BOUNDS; the hostile-clients test floods that cap).
import assert from 'node:assert/strict'
import http2, {type ClientHttp2Session} from 'node:http2'
import {test} from 'node:test'

import {readIdentityFile} from '../../src/lib/identity/file.js'
import {startTestController} from '../helpers/controller.js'
import {waitUntil} from '../helpers/wait.js'

const STORM = 300
const ANONYMOUS = 200
const ANONYMOUS_IDLE_CAP = 128

function connect(url: string, tls: {ca: string; cert?: string; key?: string}): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, {...tls, checkServerIdentity: () => undefined})
    session.once('connect', () => resolve(session))
    session.once('error', reject)
  })
}

function get(session: ClientHttp2Session, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream = session.request({':method': 'GET', ':path': path})
    stream.once('response', (headers) => resolve(Number(headers[':status'])))
    stream.once('error', reject)
    stream.resume()
  })
}

test('a storm of authenticated sessions is not evicted by the idle cap; anonymous ones still are', async (t) => {
  const ctl = await startTestController(t)
  const admin = await readIdentityFile(ctl.adminIdentityPath)
  const sessions: ClientHttp2Session[] = []
  t.after(() => {
    for (const session of sessions) session.destroy()
  })

  // All of them handshake first; none has opened a stream yet (each is idle on the server).
  for (let i = 0; i < STORM; i += 50) {
    sessions.push(...(await Promise.all(Array.from({length: Math.min(50, STORM - i)}, () => connect(ctl.url, {ca: admin.ca, cert: admin.cert, key: admin.key})))))
  }

  const closed = sessions.filter((session) => session.closed || session.destroyed).length
  const statuses = await Promise.allSettled(sessions.map((session) => get(session, '/v1/version')))
  const answered = statuses.filter((status) => status.status === 'fulfilled' && status.value === 200).length
  assert.equal(closed, 0, 'no authenticated session was closed while it was idle')
  assert.equal(answered, STORM, `${answered} of ${STORM} answered: ${statuses.find((status) => status.status === 'rejected')?.reason}`)

  // Anonymous peers (enrollment has no certificate yet) keep the small cap.
  const anonymous: ClientHttp2Session[] = []
  t.after(() => {
    for (const session of anonymous) session.destroy()
  })
  for (let i = 0; i < ANONYMOUS; i += 50) {
    anonymous.push(...(await Promise.all(Array.from({length: 50}, () => connect(ctl.url, {ca: admin.ca})))))
  }

  await waitUntil('the idle cap closing the oldest anonymous sessions', () => anonymous.filter((session) => session.closed || session.destroyed).length >= ANONYMOUS - ANONYMOUS_IDLE_CAP, 10_000)
  assert.ok(sessions.every((session) => !session.destroyed), 'the anonymous flood evicted no authenticated session')
})

// listening() (src/lib/util/listening.ts), on real sockets: resolves once a server listens or a UDP socket
// is bound, rejects with the system's error (a taken port), and leaves no error listener behind either way.
import assert from 'node:assert/strict'
import {createSocket} from 'node:dgram'
import {createServer, type AddressInfo} from 'node:net'
import {test} from 'node:test'

import {listening} from '../../src/lib/util/listening.js'

test('a TCP server: resolves when listening, a taken port rejects with EADDRINUSE, no error listener left', async (t) => {
  const first = createServer()
  t.after(() => first.close())
  await listening(first, (done) => first.listen(0, '127.0.0.1', done))
  assert.equal(first.listening, true)
  assert.equal(first.listenerCount('error'), 0)

  const second = createServer()
  const {port} = first.address() as AddressInfo
  await assert.rejects(listening(second, (done) => second.listen(port, '127.0.0.1', done)), {code: 'EADDRINUSE'})
  assert.equal(second.listenerCount('error'), 0)
  // a later error goes to the caller's listener, not to the settled promise
  const seen: string[] = []
  first.on('error', (error) => seen.push(error.message))
  first.emit('error', new Error('later'))
  assert.deepEqual(seen, ['later'])
})

test('a UDP socket: resolves when bound, a taken port rejects', async (t) => {
  const first = createSocket('udp4')
  t.after(() => first.close())
  await listening(first, (done) => first.bind(0, '127.0.0.1', done))
  assert.ok(first.address().port > 0)
  assert.equal(first.listenerCount('error'), 0)

  const second = createSocket({reuseAddr: false, type: 'udp4'})
  t.after(() => second.close())
  await assert.rejects(listening(second, (done) => second.bind(first.address().port, '127.0.0.1', done)), {code: 'EADDRINUSE'})
  assert.equal(second.listenerCount('error'), 0)
})

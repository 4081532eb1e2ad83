// The native engine's boundary: whatever JS hands the addon (stale ids, forged ids, wrong types, bad
// PEM, bad addresses) is refused with an error or `false`, never dereferenced; and a session to a peer
// that is not HBONE fails with words instead of hanging; sockets made elsewhere (a pod's) are adopted.
import assert from 'node:assert/strict'
import {once} from 'node:events'
import {closeSync, openSync} from 'node:fs'
import {createServer, Socket} from 'node:net'
import {test} from 'node:test'

import {listenTcp} from '../../src/lib/netns/native.js'
import {HboneEngine} from '../../src/lib/proxy/hbone/hbone-engine.js'
import {createMesh} from './helpers.js'

test('the addon refuses unknown ids, wrong types and bad input instead of crashing', async () => {
  const {native} = HboneEngine.get()
  for (const id of [0, 1, -1, 4_294_967_296 * 7 + 3, Number.NaN, 2 ** 60]) {
    assert.equal(native.abort(id, 'x'), false)
    assert.equal(native.cancel(id), false)
    assert.equal(native.refuse(id, 503), false)
    assert.equal(native.sessionClose(id, true), false)
    assert.equal(native.listenerClose(id), false)
    assert.equal(native.contextFree(id), false)
    assert.throws(() => native.open(id, id, '127.0.0.1:1', []), {code: 'EINVAL'})
  }

  assert.throws(() => native.contextCreate('not a pem', 'nor this', 'nor that', true), {code: 'ZT_ERR_TLS_CONTEXT', message: /no certificate/})
  const mesh = await createMesh()
  const identity = await mesh.identity('engine-test')
  assert.throws(() => native.contextCreate(identity.cert, 'garbage', identity.ca, false), {code: 'ZT_ERR_TLS_CONTEXT', message: /no private key/})
  const other = await mesh.identity('someone-else')
  assert.throws(() => native.contextCreate(identity.cert, other.key, identity.ca, false), {code: 'ZT_ERR_TLS_CONTEXT', message: /private key .*(mismatch|does not match)/})

  const context = native.contextCreate(identity.cert, identity.key, identity.ca, false)
  assert.throws(() => native.connect(context, 'not-an-ip', 1, 1000, 0, 0), {code: 'EINVAL', message: /IP address/})
  assert.throws(() => native.listen('256.1.1.1', 0, -1, 0, 0, undefined), {code: 'EINVAL'})
  // Limits out of range or of the wrong type are refused, not clamped.
  for (const limits of [{maxConcurrentStreams: 0}, {maxHeaderPairs: 'many'}, {resetBurst: Number.NaN}, {idleSessionMs: -1}, 'not an object']) {
    assert.throws(() => (native.listen as (...args: unknown[]) => unknown)('127.0.0.1', 0, context, 0, 0, limits), {code: 'EINVAL'}, JSON.stringify(limits))
  }
  assert.throws(() => native.accept(1, 'nope', 80, 1000), {code: 'EINVAL'})
  assert.throws(() => native.refuse(1, 200), {code: 'EINVAL', message: /4xx or 5xx/})
  assert.throws(() => (native.open as (...args: unknown[]) => boolean)(1, 1, 42, 'not an array'), {code: 'EINVAL'})
  assert.equal(native.contextFree(context), true)
  assert.equal(native.contextFree(context), false) // a freed id is stale at once
})

test('a session to something that is not an HBONE server fails with a reason, not a hang', async (t) => {
  const engine = HboneEngine.get()
  const mesh = await createMesh()
  const identity = await mesh.identity('engine-client')
  // A plain TCP server that answers with HTTP/1 garbage and closes.
  const server = createServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => server.close())
  const context = engine.native.contextCreate(identity.cert, identity.key, identity.ca, false)
  t.after(() => engine.native.contextFree(context))
  const port = (server.address() as {port: number}).port
  const reason = await new Promise<string>((resolve) => {
    engine.connect(context, '127.0.0.1', port, {connectTimeoutMs: 5000, keepaliveIntervalMs: 0, keepaliveTimeoutMs: 0}, {
      closed: resolve,
      failed: resolve,
      goaway() {},
      ready: () => resolve('unexpectedly ready'),
    })
  })
  assert.match(reason, /TLS|SSL routines|closed|handshake|wrong version/i)

  // Nothing listens: ECONNREFUSED, named.
  const closed = await new Promise<number>((resolve) => {
    const probe = createServer()
    probe.listen(0, '127.0.0.1', () => {
      const free = (probe.address() as {port: number}).port
      probe.close(() => resolve(free))
    })
  })
  const refused = await new Promise<string>((resolve) => {
    engine.connect(context, '127.0.0.1', closed, {connectTimeoutMs: 5000, keepaliveIntervalMs: 0, keepaliveTimeoutMs: 0}, {
      closed: resolve, failed: resolve, goaway() {}, ready: () => resolve('unexpectedly ready'),
    })
  })
  assert.match(refused, /^ECONNREFUSED/)
})

test('adopted sockets: a listener made elsewhere, an accepted socket handed back to node:net, bad fds refused', async (t) => {
  const engine = HboneEngine.get()
  const {native} = engine
  // A listening socket made by the netns addon (as for a pod's 15001), served by the engine.
  const fd = listenTcp('127.0.0.1', 0)
  const client = new Socket()
  t.after(() => client.destroy())
  const accepted = new Promise<number>((resolve) => {
    const {id, port} = engine.listenPlain('0.0.0.0', 1, (tunnelId) => resolve(tunnelId), fd)
    t.after(() => engine.closeListener(id))
    client.connect(port, '127.0.0.1')
  })
  const tunnelId = await accepted
  assert.ok(native.plainFd(tunnelId) >= 0, 'the accepted socket is readable by JS (SO_ORIGINAL_DST)')
  const taken = native.detach(tunnelId)
  assert.ok(taken >= 0)
  assert.equal(native.detach(tunnelId), -1, 'a detached tunnel is gone')
  assert.equal(native.plainFd(tunnelId), -1)
  const socket = new Socket({fd: taken, readable: true, writable: true})
  t.after(() => socket.destroy())
  const got = once(socket, 'data')
  client.write('through node:net')
  assert.equal(String((await got)[0]), 'through node:net')

  for (const id of [0, -1, Number.NaN, 2 ** 60]) {
    assert.equal(native.plainFd(id), -1)
    assert.equal(native.detach(id), -1)
  }

  const mesh = await createMesh()
  const identity = await mesh.identity('engine-adopt')
  const context = native.contextCreate(identity.cert, identity.key, identity.ca, false)
  t.after(() => native.contextFree(context))
  // Not an integer, not open, or not a socket (a file): refused and left alone.
  const file = openSync(process.execPath, 'r')
  t.after(() => closeSync(file))
  for (const bad of [-5, 1_000_000, 1.5, 'seven', file]) {
    assert.throws(() => (native.listen as (...args: unknown[]) => unknown)('127.0.0.1', 0, -1, 0, 0, undefined, bad), {code: 'EBADF'}, String(bad))
    assert.throws(() => (native.connect as (...args: unknown[]) => unknown)(context, '127.0.0.1', 1, 1000, 0, 0, bad), {code: 'EBADF'}, String(bad))
    assert.throws(() => (native.accept as (...args: unknown[]) => unknown)(1, '127.0.0.1', 80, 1000, bad), {code: 'EINVAL'}, String(bad))
  }
})

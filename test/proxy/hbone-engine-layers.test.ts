// The native engine's layering primitives, driven directly: a relay (two streams spliced on a "hub"
// listener) carrying an inner TLS + HTTP/2 session end to end between two clients of it; socketpair
// tunnels (JS holds one end); peek/write/finish on a plain socket (a proxy handshake); and the new
// calls refusing stale ids.
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {connect, Socket} from 'node:net'
import {test, type TestContext} from 'node:test'

import {HBONE_BOUNDS} from '../../src/lib/http2/server-bounds.js'
import {type ClientSessionHandler, HboneEngine, type PeerCertificateInfo} from '../../src/lib/proxy/hbone/hbone-engine.js'
import {createMesh, echoServer, roundTripOn, sha256, waitFor} from './helpers.js'

const TIMING = {connectTimeoutMs: 5000, keepaliveIntervalMs: 500, keepaliveTimeoutMs: 2000}

/** A client session of ENGINE to 127.0.0.1:PORT with CONTEXT; resolves with its id and the server's certificate. */
function connectSession(engine: HboneEngine, context: number, port: number): Promise<{id: number; peer: PeerCertificateInfo}> {
  return new Promise((resolve, reject) => {
    const id = engine.connect(context, '127.0.0.1', port, TIMING, {
      closed() {}, failed: (reason) => reject(new Error(reason)), goaway() {}, ready: (peer) => resolve({id, peer}),
    })
  })
}

async function contexts(t: TestContext, names: string[]) {
  const engine = HboneEngine.get()
  const mesh = await createMesh()
  const result: Record<string, {client: number; server: number; spiffe: string}> = {}
  for (const name of names) {
    const identity = await mesh.identity(name)
    const client = engine.native.contextCreate(identity.cert, identity.key, identity.ca, false)
    const server = engine.native.contextCreate(identity.cert, identity.key, identity.ca, true)
    t.after(() => {
      engine.native.contextFree(client)
      engine.native.contextFree(server)
    })
    result[name] = {client, server, spiffe: identity.spiffe}
  }

  return {engine, ids: result}
}

test('a spliced relay carries an inner mutual-TLS session end to end; the relay sees only its byte counts', async (t) => {
  const {engine, ids} = await contexts(t, ['hub', 'a', 'b'])
  const echo = await echoServer(t)
  // The "hub": holds `accept` streams, splices a `relay` stream to one.
  const held: number[] = []
  const relayed: {bytes: number[]}[] = []
  const hub = engine.listenHbone('127.0.0.1', 0, ids.hub!.server, {intervalMs: 500, timeoutMs: 2000}, HBONE_BOUNDS, {
    sessionReady: () => ({
      closed() {},
      request(tunnelId, method, authority, _forwarded, role) {
        assert.equal(method, 'CONNECT')
        if (role === 'accept') {
          held.push(tunnelId)
          return
        }

        assert.equal(role, 'relay')
        assert.equal(authority, 'b:15008')
        const standby = held.shift()!
        const record = {bytes: [] as number[]}
        relayed.push(record)
        for (const id of [tunnelId, standby]) engine.watchTunnel(id, {closed: (fromPlain, toPlain) => record.bytes.push(fromPlain, toPlain)})
        assert.equal(engine.native.splice(tunnelId, standby, [], ['forwarded', 'for="10.9.8.7:6543"']), true)
      },
    }),
    tlsError() {},
  })
  t.after(() => engine.closeListener(hub.id))

  // "b": attached to the hub with a standby stream; its inner sessions land on a virtual listener.
  const sessionB = await connectSession(engine, ids.b!.client, hub.port)
  assert.equal(sessionB.peer.spiffe, ids.hub!.spiffe)
  const innerPeers: {remote: string; spiffe?: string}[] = []
  const virtual = engine.listenVirtual(ids.b!.server, {intervalMs: 0, timeoutMs: 0}, HBONE_BOUNDS, {
    sessionReady(_id, peer, remote) {
      innerPeers.push({remote, spiffe: peer.spiffe})
      return {
        closed() {},
        request(tunnelId, _method, authority) {
          assert.equal(authority, `127.0.0.1:${echo.port}`)
          engine.native.accept(tunnelId, '127.0.0.1', echo.port, 5000)
        },
      }
    },
    tlsError(remote, message) {
      throw new Error(`inner TLS failed from ${remote}: ${message}`)
    },
  })
  t.after(() => engine.closeListener(virtual))
  const standby = engine.carrier(sessionB.id, 'b:15008', ['ztctl-hub', 'accept'], {listenerId: virtual}, {response() {}})
  assert.ok(standby)
  await waitFor('the hub holds the standby stream', () => held.length === 1)

  // "a": attached too; its relay stream carries a client session that must present b's identity.
  const sessionA = await connectSession(engine, ids.a!.client, hub.port)
  const innerA = await new Promise<{id: number; peer: PeerCertificateInfo}>((resolve, reject) => {
    const handler: ClientSessionHandler = {closed() {}, failed: (reason) => reject(new Error(reason)), goaway() {}, ready: (peer) => resolve({id: opened.innerId, peer})}
    const opened = engine.carrier(sessionA.id, 'b:15008', ['ztctl-hub', 'relay'], {client: handler, contextId: ids.a!.client, keepaliveIntervalMs: 0, keepaliveTimeoutMs: 0, timeoutMs: 5000}, {response() {}})!
  })
  assert.equal(innerA.peer.spiffe, ids.b!.spiffe, 'the inner session is with b itself, not the hub')
  await waitFor('b saw a as its inner peer', () => innerPeers.length === 1)
  assert.deepEqual(innerPeers[0], {remote: '10.9.8.7:6543', spiffe: ids.a!.spiffe})

  // A tunnel over the inner session, with its plain side a socketpair held here.
  const [tunnelId, fd] = engine.native.pair()
  const socket = new Socket({allowHalfOpen: true, fd, readable: true, writable: true})
  const status = await new Promise<number>((resolve) => {
    engine.watchTunnel(tunnelId, {closed() {}, response: (code) => resolve(code)})
    assert.equal(engine.native.open(tunnelId, innerA.id, `127.0.0.1:${echo.port}`, []), true)
  })
  assert.equal(status, 200)
  const data = randomBytes(2 * 1024 * 1024)
  assert.equal(sha256(await roundTripOn(socket, data)), sha256(data))

  // The relay ends with the inner session; both spliced streams report their bytes (ciphertext ≥ payload).
  engine.native.sessionClose(innerA.id, false)
  await waitFor('both relay streams closed', () => relayed[0]!.bytes.length === 4)
  assert.ok(relayed[0]!.bytes.every((count) => count > data.length), `relay byte counts ${relayed[0]!.bytes.join(', ')}`)
  const info = engine.sessionInfo(sessionA.id)
  assert.ok(info && info.rttMs !== undefined && info.rttMs < 1000, 'the hub session measured a round trip')
  engine.native.sessionClose(sessionA.id, false)
  engine.native.sessionClose(sessionB.id, false)
})

test('a plain socket in peek mode: bytes to JS, replies back, finish() sends a last word and a FIN', async (t) => {
  const engine = HboneEngine.get()
  const accepted: number[] = []
  const listener = engine.listenPlain('127.0.0.1', 0, (tunnelId) => accepted.push(tunnelId))
  t.after(() => engine.closeListener(listener.id))
  const client = connect({host: '127.0.0.1', port: listener.port})
  client.on('error', () => {})
  const received: Buffer[] = []
  client.on('data', (chunk: Buffer) => received.push(chunk))
  const ended = new Promise((resolve) => client.once('end', resolve))
  await waitFor('accepted', () => accepted.length === 1)
  const tunnelId = accepted[0]!
  const seen: Buffer[] = []
  engine.watchTunnel(tunnelId, {data: (count, bytes) => count > 0 && seen.push(bytes!)})
  assert.equal(engine.native.peek(tunnelId, 64), true)
  client.write('hello\0world')
  await waitFor('the bytes reached JS', () => Buffer.concat(seen).length === 11)
  assert.equal(Buffer.concat(seen).toString('latin1'), 'hello\0world')
  assert.equal(engine.native.write(tunnelId, Buffer.from('step ')), true)
  assert.equal(engine.native.finish(tunnelId, Buffer.from('refused')), true)
  await ended
  assert.equal(Buffer.concat(received).toString(), 'step refused')
  client.destroy()
  await waitFor('the tunnel is gone', () => engine.native.write(tunnelId, Buffer.from('x')) === false)
})

test('the layering calls refuse stale ids and bad arguments', () => {
  const {native} = HboneEngine.get()
  for (const id of [0, 1, -1, 4_294_967_296 * 9 + 5, Number.NaN]) {
    assert.equal(native.peek(id, 10), false)
    assert.equal(native.write(id, Buffer.from('x')), false)
    assert.equal(native.finish(id), false)
    assert.equal(native.acceptPair(id), -1)
    assert.equal(native.splice(id, id + 1, [], []), false)
    assert.equal(native.sessionInfo(id), null)
    assert.throws(() => native.carrier(id, 'x:1', [], false, id, 0, 0, 0), {code: 'EINVAL'})
  }

  assert.throws(() => native.peek(1, 0), {code: 'EINVAL'})
  assert.throws(() => native.listenVirtual(-5, 0, 0, undefined), {code: 'EINVAL'})
  const [tunnelId, fd] = native.pair()
  assert.throws(() => native.open(tunnelId, 1, 'x:1', [], 'not a buffer' as unknown as Buffer), {code: 'EINVAL'})
  assert.equal(native.abort(tunnelId, 'test over'), true)
  new Socket({fd}).destroy()
})

test('a relay whose one side resets ends the other side too', async (t) => {
  const {engine, ids} = await contexts(t, ['hub2', 'x'])
  const held: number[] = []
  const closed: string[] = []
  const hub = engine.listenHbone('127.0.0.1', 0, ids.hub2!.server, {intervalMs: 0, timeoutMs: 0}, HBONE_BOUNDS, {
    sessionReady: () => ({
      closed() {},
      request(tunnelId, _method, _authority, _forwarded, role) {
        engine.watchTunnel(tunnelId, {closed: (_from, _to, error) => closed.push(error ?? 'clean')})
        if (role === 'accept') held.push(tunnelId)
        else engine.native.splice(tunnelId, held.shift()!, [], [])
      },
    }),
    tlsError() {},
  })
  t.after(() => engine.closeListener(hub.id))
  const session = await connectSession(engine, ids.x!.client, hub.port)
  // Two plain tunnels over socketpairs: one waits as `accept`, the other relays to it.
  const open = (role: string) => {
    const [tunnelId, fd] = engine.native.pair()
    const socket = new Socket({allowHalfOpen: true, fd, readable: true, writable: true})
    socket.on('error', () => {})
    const status = new Promise<number>((resolve) => {
      engine.watchTunnel(tunnelId, {closed() {}, response: (code) => resolve(code)})
      engine.native.open(tunnelId, session.id, 'x:15008', ['ztctl-hub', role])
    })
    return {socket, status, tunnelId}
  }

  const accepting = open('accept')
  await waitFor('held', () => held.length === 1)
  const relaying = open('relay')
  assert.equal(await relaying.status, 200)
  assert.equal(await accepting.status, 200)
  const got = new Promise<Buffer>((resolve) => accepting.socket.once('data', resolve))
  relaying.socket.write('through the splice')
  assert.equal((await got).toString(), 'through the splice')
  // One side is reset (as a policy change or a dying agent would): the other ends too; the relay's own
  // socket hears it (a socketpair has no RST: EOF or ECONNRESET).
  const relayEnded = new Promise((resolve) => {
    relaying.socket.once('end', resolve)
    relaying.socket.once('close', resolve)
  })
  relaying.socket.resume()
  assert.equal(engine.native.abort(accepting.tunnelId, 'reset by the test'), true)
  await waitFor('both spliced streams closed', () => closed.length === 2)
  assert.ok(closed.every((reason) => reason !== 'clean'), `reasons: ${closed.join(' / ')}`)
  await relayEnded
  relaying.socket.destroy()
  accepting.socket.destroy()
  engine.native.sessionClose(session.id, false)
})

// The native engine's plain ↔ plain relay (the in-pod path's 15006, local fast path and passthrough), driven
// directly: an accepted connection of a plain listener joined to one the engine dials. Stale and forged ids,
// bad addresses and non-socket fds are refused; megabytes cross byte for byte both ways; FIN crosses each way
// while the other direction keeps flowing; a reset on either end resets the other; a reader that stops
// pushes back on the writer (bounded, then everything arrives); a closed port and a silent one fail the dial
// with their errno and reset the client; nothing is left in the addon.
import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {once} from 'node:events'
import {closeSync, openSync} from 'node:fs'
import {createServer, type Server, Socket} from 'node:net'
import {test, type TestContext} from 'node:test'

import {tcpSocket} from '../../src/lib/netns/native.js'
import {HboneEngine} from '../../src/lib/proxy/hbone/hbone-engine.js'
import {createTopology} from '../helpers/netns.js'
import {waitFor} from './helpers.js'

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

interface Relayed {
  client: Socket
  closed: Promise<{error?: string; fromPlain: number; toPlain: number}>
  dial: Promise<string>
  id: number
}

/** A plain listener of the engine on 127.0.0.1: the next client's accepted tunnel id (and that client). */
async function acceptOne(t: TestContext): Promise<{client: Socket; tunnelId: number}> {
  const engine = HboneEngine.get()
  const client = new Socket({allowHalfOpen: true})
  client.on('error', () => {})
  t.after(() => client.destroy())
  const tunnelId = await new Promise<number>((resolve) => {
    const {id, port} = engine.listenPlain('127.0.0.1', 0, (accepted) => resolve(accepted))
    t.after(() => engine.closeListener(id))
    client.connect(port, '127.0.0.1')
  })
  return {client, tunnelId}
}

/** A client of an engine listener, relayed by the engine to 127.0.0.1:PORT (from FD when given). */
async function relayTo(t: TestContext, port: number, options: {fd?: number; host?: string; timeoutMs?: number} = {}): Promise<Relayed> {
  const engine = HboneEngine.get()
  const {client, tunnelId} = await acceptOne(t)
  let dialled!: (code: string) => void
  let ended!: (end: {error?: string; fromPlain: number; toPlain: number}) => void
  const dial = new Promise<string>((resolve) => (dialled = resolve))
  const closed = new Promise<{error?: string; fromPlain: number; toPlain: number}>((resolve) => (ended = resolve))
  const id = engine.relay(tunnelId, {host: options.host ?? '127.0.0.1', port}, options.timeoutMs ?? 5000, {
    closed: (fromPlain, toPlain, error) => ended({error, fromPlain, toPlain}),
    dialResult: (code) => dialled(code),
  }, options.fd)
  assert.ok(id !== undefined, 'the accepted connection is relayed')
  return {client, closed, dial, id}
}

/** A server on 127.0.0.1 (half-open allowed) handing each connection to ON_CONNECTION. */
async function server(t: TestContext, onConnection: (socket: Socket) => void): Promise<{port: number; server: Server}> {
  const sockets = new Set<Socket>()
  const listening = createServer({allowHalfOpen: true}, (socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    onConnection(socket)
  })
  await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve))
  t.after(() => {
    for (const socket of sockets) socket.destroy()
    listening.close()
  })
  return {port: (listening.address() as {port: number}).port, server: listening}
}

/** Everything SOCKET sends until its FIN. */
async function readAll(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  await once(socket, 'end')
  return Buffer.concat(chunks)
}

async function closedPort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const {port} = probe.address() as {port: number}
  await new Promise((resolve) => probe.close(resolve))
  return port
}

const noRelayLeft = (): Promise<true> => waitFor('no relay left in the addon', () => HboneEngine.get().stats().relays === 0 || undefined)

test('relay refuses stale and forged ids, bad targets and non-socket fds; a relayed connection is no longer a tunnel', async (t) => {
  const engine = HboneEngine.get()
  const {native} = engine
  for (const id of [0, 1, -1, 4_294_967_296 * 7 + 3, Number.NaN, 2 ** 60]) {
    assert.equal(native.relay(id, '127.0.0.1', 1, 1000), -1)
    assert.equal(native.relayAbort(id, 'x'), false)
  }

  assert.throws(() => (native.relay as (...args: unknown[]) => unknown)(1, 42, 'port', 1000), {code: 'EINVAL'})
  assert.throws(() => native.relay(1, 'not-an-ip', 80, 1000), {code: 'EINVAL', message: /IP address/})
  const file = openSync(process.execPath, 'r')
  t.after(() => closeSync(file))
  const {client, tunnelId} = await acceptOne(t)
  for (const bad of [-5, 1_000_000, 1.5, 'seven', file]) {
    assert.throws(() => (native.relay as (...args: unknown[]) => unknown)(tunnelId, '127.0.0.1', 80, 1000, bad), {code: 'EBADF'}, String(bad))
  }

  // Refused calls left the accepted connection alone: it is relayed now, from a socket made elsewhere.
  const {port} = await server(t, (socket) => socket.end('hello from upstream'))
  const dialled = new Promise<string>((resolve) => {
    const id = engine.relay(tunnelId, {host: '127.0.0.1', port}, 5000, {closed() {}, dialResult: resolve}, tcpSocket(4))
    assert.ok(id !== undefined)
  })
  assert.equal(await dialled, '')
  assert.equal(native.plainFd(tunnelId), -1, 'the tunnel is gone')
  assert.equal(native.relay(tunnelId, '127.0.0.1', port, 1000), -1, 'and cannot be relayed twice')
  assert.equal(native.detach(tunnelId), -1)
  client.end()
  assert.equal(String(await readAll(client)), 'hello from upstream')
  await noRelayLeft()
})

test('megabytes cross byte for byte both ways; FIN crosses each way while the other direction flows', async (t) => {
  const up = randomBytes(8 * 1024 * 1024)
  const down = randomBytes(6 * 1024 * 1024)
  // Client ends first: the upstream still answers after the client's FIN, then ends.
  const {port} = await server(t, (socket) => {
    void readAll(socket).then((got) => {
      assert.equal(sha(got), sha(up), 'upstream got the client bytes intact')
      socket.end(down)
    })
  })
  const first = await relayTo(t, port)
  assert.equal(await first.dial, '')
  const reply = readAll(first.client)
  first.client.end(up)
  assert.equal(sha(await reply), sha(down), 'the client got the reply intact')
  assert.deepEqual(await first.closed, {error: undefined, fromPlain: up.length, toPlain: down.length})

  // Upstream ends first: the client keeps sending after the upstream's FIN, then ends.
  let upstreamGot: Promise<Buffer> | undefined
  const {port: second} = await server(t, (socket) => {
    upstreamGot = readAll(socket)
    socket.end(down)
  })
  const relayed = await relayTo(t, second)
  assert.equal(sha(await readAll(relayed.client)), sha(down), 'the upstream\'s bytes, then its FIN')
  assert.ok(!relayed.client.writableEnded, 'the client side is still open')
  relayed.client.end(up)
  assert.equal(sha(await (await waitFor('the upstream connection', () => upstreamGot))), sha(up), 'the client kept sending after the upstream\'s FIN')
  assert.deepEqual(await relayed.closed, {error: undefined, fromPlain: up.length, toPlain: down.length})
  await noRelayLeft()
})

test('a reset on either end resets the other; abort resets both and says why', async (t) => {
  let upstream: Socket | undefined
  const {port} = await server(t, (socket) => (upstream = socket))

  // The client resets: the upstream sees ECONNRESET.
  const a = await relayTo(t, port)
  assert.equal(await a.dial, '')
  const aUp = await waitFor('the upstream connection', () => upstream)
  upstream = undefined
  const aReset = once(aUp, 'error')
  a.client.resetAndDestroy()
  assert.equal(((await aReset)[0] as NodeJS.ErrnoException).code, 'ECONNRESET')
  assert.equal((await a.closed).error, undefined, 'a peer reset is not an error')

  // The upstream resets: the client sees ECONNRESET.
  const b = await relayTo(t, port)
  assert.equal(await b.dial, '')
  const bUp = await waitFor('the upstream connection', () => upstream)
  upstream = undefined
  const bReset = once(b.client, 'error')
  bUp.resetAndDestroy()
  assert.equal(((await bReset)[0] as NodeJS.ErrnoException).code, 'ECONNRESET')
  await b.closed

  // Abort by id: both ends reset, EV_CLOSED carries the reason; a second abort finds nothing.
  const c = await relayTo(t, port)
  assert.equal(await c.dial, '')
  const cUp = await waitFor('the upstream connection', () => upstream)
  const both = Promise.all([once(c.client, 'error'), once(cUp, 'error')])
  c.client.write('some bytes first')
  assert.equal(HboneEngine.get().native.relayAbort(c.id, 'closed by policy'), true)
  assert.deepEqual((await both).map(([error]) => (error as NodeJS.ErrnoException).code), ['ECONNRESET', 'ECONNRESET'])
  assert.equal((await c.closed).error, 'closed by policy')
  assert.equal(HboneEngine.get().native.relayAbort(c.id, 'again'), false)
  await noRelayLeft()
})

test('a reader that stops pushes back on the writer (bounded), then everything arrives', async (t) => {
  const total = 64 * 1024 * 1024
  const data = randomBytes(total)
  let upstream: Socket | undefined
  const {port} = await server(t, (socket) => {
    socket.pause()
    upstream = socket
  })
  const relayed = await relayTo(t, port)
  assert.equal(await relayed.dial, '')
  const reader = await waitFor('the upstream connection', () => upstream)
  relayed.client.write(data)
  relayed.client.end()
  // Wait until the client stops making progress: the kernel buffers and the relay's one chunk are full.
  let accepted = -1
  await waitFor('the writer stalls', async () => {
    const now = total - relayed.client.writableLength
    const stalled = now === accepted
    accepted = now
    await new Promise((resolve) => setTimeout(resolve, 300))
    return stalled || undefined
  }, 20_000)
  assert.ok(accepted < total / 2, `the relay holds back: ${accepted} of ${total} bytes left the client while nobody read`)
  const got = readAll(reader)
  reader.resume()
  assert.equal(sha(await got), sha(data), 'once read, every byte arrives intact')
  reader.end()
  assert.deepEqual(await relayed.closed, {error: undefined, fromPlain: total, toPlain: 0})
  await noRelayLeft()
})

test('a dial to a closed port fails with ECONNREFUSED and resets the client; nothing is left', async (t) => {
  const relayed = await relayTo(t, await closedPort())
  const reset = once(relayed.client, 'error')
  assert.equal(await relayed.dial, 'ECONNREFUSED')
  assert.equal(((await reset)[0] as NodeJS.ErrnoException).code, 'ECONNRESET')
  await noRelayLeft()
})

test('a dial nobody answers times out (ETIMEDOUT) and resets the client', async (t) => {
  // A namespace whose loopback drops SYNs to one port: the dial's socket is made there.
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 1})
  const pod = topo.pods[0]!
  await topo.execOk(pod.netns, 'ip', ['link', 'set', 'lo', 'up'])
  await topo.execOk(pod.netns, 'iptables', ['-A', 'INPUT', '-p', 'tcp', '--dport', '9', '-j', 'DROP'])
  const started = Date.now()
  const relayed = await relayTo(t, 9, {fd: tcpSocket(4, {netns: pod.netnsPath}), timeoutMs: 300})
  const reset = once(relayed.client, 'error')
  assert.equal(await relayed.dial, 'ETIMEDOUT')
  assert.ok(Date.now() - started >= 250, 'after the timeout, not before')
  assert.equal(((await reset)[0] as NodeJS.ErrnoException).code, 'ECONNRESET')
  await noRelayLeft()
})

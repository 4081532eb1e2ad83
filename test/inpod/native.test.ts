// The netns addon in real network namespaces (root): listeners and client sockets created inside a pod's
// namespace, SO_MARK on both, SO_REUSEPORT handoff, SO_ORIGINAL_DST after an iptables REDIRECT, and the
// main thread always back in its own namespace.
import assert from 'node:assert/strict'
import {createSocket, type Socket as UdpSocket} from 'node:dgram'
import {closeSync, readlinkSync} from 'node:fs'
import net from 'node:net'
import {once} from 'node:events'
import {test} from 'node:test'

import {INPOD_SKIP_MARK, bindUdp, getMark, listenTcp, originalDst, tcpSocket, tcpSockets} from '../../src/lib/netns/native.js'
import {ZtError} from '../../src/lib/errors.js'
import {createTopology} from '../helpers/netns.js'

function adoptListener(t: {after(fn: () => void): void}, fd: number, onConnection: (socket: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer(onConnection)
  t.after(() => server.close())
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({fd}, () => resolve(server))
  })
}

function echo(socket: net.Socket): void {
  socket.on('error', () => socket.destroy())
  socket.pipe(socket)
}

/** Connect from inside `netns` with a marked socket, send `text`, return what comes back. */
async function roundTrip(netns: string, host: string, port: number, text: string): Promise<{reply: string; mark: number}> {
  const fd = tcpSocket(4, {netns, mark: INPOD_SKIP_MARK})
  const socket = new net.Socket({fd})
  try {
    socket.connect(port, host)
    await once(socket, 'connect')
    const mark = getMark(fd)
    socket.end(text)
    const chunks: Buffer[] = []
    for await (const chunk of socket) chunks.push(chunk as Buffer)
    return {reply: Buffer.concat(chunks).toString(), mark}
  } finally {
    socket.destroy()
  }
}

test('listen and connect inside a pod netns, marked, main thread unchanged', async (t) => {
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 2})
  const [pod1, pod2] = topo.pods as [typeof topo.pods[0], typeof topo.pods[0]]
  const hostNetnsBefore = readlinkSync('/proc/self/ns/net')

  const fd = listenTcp('0.0.0.0', 0, {netns: pod1.netnsPath, mark: INPOD_SKIP_MARK, reusePort: true})
  assert.equal(readlinkSync('/proc/self/ns/net'), hostNetnsBefore, 'the main thread is back in its own netns')
  assert.equal(getMark(fd), INPOD_SKIP_MARK)
  const server = await adoptListener(t, fd, echo)
  const {port} = server.address() as net.AddressInfo

  // The listener exists in the pod's namespace, not in ours.
  const ssInPod = await topo.execOk(pod1.netns, 'ss', ['-Htln', `sport = :${port}`])
  assert.match(ssInPod, new RegExp(`:${port}\\b`))
  const ssHere = await topo.exec(pod2.netns, 'ss', ['-Htln', `sport = :${port}`])
  assert.equal(ssHere.stdout.trim(), '', 'no such listener in another namespace')

  // From inside the same pod (loopback) and from the neighbour pod (over the bridge).
  const local = await roundTrip(pod1.netnsPath, '127.0.0.1', port, 'hello')
  assert.deepEqual(local, {reply: 'hello', mark: INPOD_SKIP_MARK})
  const remote = await roundTrip(pod2.netnsPath, pod1.ip, port, 'over the bridge')
  assert.equal(remote.reply, 'over the bridge')
  assert.equal(readlinkSync('/proc/self/ns/net'), hostNetnsBefore)
})

test('tcpSockets: a batch of marked sockets made inside the pod netns in one switch; a bad count is refused', async (t) => {
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 1})
  const pod = topo.pods[0]!
  const server = await adoptListener(t, listenTcp('0.0.0.0', 0, {netns: pod.netnsPath}), echo)
  const {port} = server.address() as net.AddressInfo
  const fds = tcpSockets(4, 3, {mark: INPOD_SKIP_MARK, netns: pod.netnsPath})
  assert.equal(new Set(fds).size, 3)
  for (const [index, fd] of fds.entries()) {
    assert.equal(getMark(fd), INPOD_SKIP_MARK)
    // Inside the pod: its loopback answers (ours has no such listener).
    const socket = new net.Socket({fd}).connect(port, '127.0.0.1')
    t.after(() => socket.destroy())
    await once(socket, 'connect')
    const reply = once(socket, 'data')
    socket.write(`socket ${index}`)
    assert.equal(String((await reply)[0]), `socket ${index}`)
  }

  for (const count of [0, 65, -1, Number.NaN]) assert.throws(() => tcpSockets(4, count, {netns: pod.netnsPath}), /count must be 1\.\.64/, String(count))
  assert.throws(() => tcpSockets(4, 2, {netns: '/nonexistent/netns'}), (error: unknown) => error instanceof ZtError && /open\(netns\)/.test(error.message))
})

test('SO_REUSEPORT lets a second listener share the port (restart handoff)', async (t) => {
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 1})
  const pod = topo.pods[0]!
  const first = await adoptListener(t, listenTcp('0.0.0.0', 0, {netns: pod.netnsPath, mark: INPOD_SKIP_MARK, reusePort: true}), echo)
  const {port} = first.address() as net.AddressInfo
  const second = await adoptListener(t, listenTcp('0.0.0.0', port, {netns: pod.netnsPath, mark: INPOD_SKIP_MARK, reusePort: true}), echo)
  assert.equal((second.address() as net.AddressInfo).port, port)
  // The old one closes: the new one keeps serving.
  await new Promise((resolve) => first.close(resolve))
  assert.equal((await roundTrip(pod.netnsPath, '127.0.0.1', port, 'still here')).reply, 'still here')
  // Without SO_REUSEPORT the port is taken.
  assert.throws(() => listenTcp('0.0.0.0', port, {netns: pod.netnsPath}), (error: unknown) => ZtError.is(error) && error.code === 'ZT_ERR_NETNS' && /EADDRINUSE|in use/i.test(error.message))
})

test('originalDst returns the destination before an iptables REDIRECT', async (t) => {
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 2})
  const [pod1, pod2] = topo.pods as [typeof topo.pods[0], typeof topo.pods[0]]
  const seen: {address: string; port: number; family: number}[] = []
  const server = await adoptListener(t, listenTcp('0.0.0.0', 0, {netns: pod1.netnsPath, mark: INPOD_SKIP_MARK}), (socket) => {
    seen.push(originalDst((socket as unknown as {_handle: {fd: number}})._handle.fd))
    socket.end('redirected')
  })
  const {port} = server.address() as net.AddressInfo
  // Unmarked outbound TCP from pod1 to pod2:7777 lands on our listener (the in-pod rule, in miniature).
  await topo.execOk(pod1.netns, 'iptables', ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', pod2.ip, '--dport', '7777', '-m', 'mark', '!', '--mark', `${INPOD_SKIP_MARK}/0xfff`, '-j', 'REDIRECT', '--to-ports', String(port)])
  const fd = tcpSocket(4, {netns: pod1.netnsPath})
  const socket = new net.Socket({fd})
  t.after(() => socket.destroy())
  socket.connect(7777, pod2.ip)
  const [reply] = (await once(socket, 'data')) as [Buffer]
  assert.equal(reply.toString(), 'redirected')
  assert.deepEqual(seen, [{address: pod2.ip, port: 7777, family: 4}])
  // A socket that was not redirected has no original destination: a clear error, not a crash.
  const plain = listenTcp('127.0.0.1', 0, {})
  t.after(() => closeSync(plain))
  assert.throws(() => originalDst(plain), (error: unknown) => ZtError.is(error) && error.code === 'ZT_ERR_NETNS')
})

/** node:dgram adopting a UDP fd from the addon. */
function adoptUdp(t: {after(fn: () => void): void}, fd: number): Promise<UdpSocket> {
  const socket = createSocket('udp4')
  t.after(() => socket.close())
  return new Promise((resolve) => socket.bind({fd}, () => resolve(socket)))
}

test('bindUdp: a UDP socket bound inside a pod netns, marked, adopted by node:dgram; SO_REUSEPORT shares the port', async (t) => {
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 2})
  const [pod1, pod2] = topo.pods as [typeof topo.pods[0], typeof topo.pods[0]]
  const hostNetnsBefore = readlinkSync('/proc/self/ns/net')
  const fd = bindUdp('0.0.0.0', 0, {mark: INPOD_SKIP_MARK, netns: pod1.netnsPath, reusePort: true})
  assert.equal(readlinkSync('/proc/self/ns/net'), hostNetnsBefore, 'the main thread is back in its own netns')
  assert.equal(getMark(fd), INPOD_SKIP_MARK)
  const server = await adoptUdp(t, fd)
  const {port} = server.address()
  server.on('message', (message, remote) => server.send(`echo ${message.toString()} from ${remote.address}`, remote.port, remote.address))
  assert.match(await topo.execOk(pod1.netns, 'ss', ['-Hnul', `sport = :${port}`]), new RegExp(`:${port}\\b`), 'bound in the pod')
  assert.equal((await topo.execOk(pod2.netns, 'ss', ['-Hnul', `sport = :${port}`])).trim(), '', 'not in another namespace')

  // A client socket inside the neighbour pod (port 0), talking over the bridge.
  const client = await adoptUdp(t, bindUdp('0.0.0.0', 0, {netns: pod2.netnsPath}))
  const reply = new Promise<string>((resolve) => client.once('message', (message) => resolve(message.toString())))
  client.send('ping', port, pod1.ip)
  assert.equal(await reply, `echo ping from ${pod2.ip}`)

  // Restart handoff as for TCP: a second socket on the same port with SO_REUSEPORT; without it, taken.
  const second = bindUdp('0.0.0.0', port, {netns: pod1.netnsPath, reusePort: true})
  closeSync(second)
  assert.throws(() => bindUdp('0.0.0.0', port, {netns: pod1.netnsPath}), (error: unknown) => ZtError.is(error) && error.code === 'ZT_ERR_NETNS' && /EADDRINUSE|in use/i.test(error.message))
  assert.throws(() => bindUdp('not-an-ip', 0), (error: unknown) => ZtError.is(error) && /IP address/.test(error.message))
})

test('a missing netns is a ZtError with the errno text and a suggestion', () => {
  assert.throws(
    () => listenTcp('0.0.0.0', 0, {netns: '/var/run/netns/does-not-exist-ztctl'}),
    (error: unknown) => ZtError.is(error) && error.code === 'ZT_ERR_NETNS' && /No such file/.test(error.message) && /ip netns list/.test(error.suggestion ?? ''),
  )
  assert.throws(() => listenTcp('not-an-ip', 0), (error: unknown) => ZtError.is(error) && /IP address/.test(error.message))
})

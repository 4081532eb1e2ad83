// The sidecar DNS server over real UDP and TCP sockets on 127.0.0.1, with queries built byte by byte,
// a real upstream resolver peer (a tiny dgram/TCP server in this file), and garbage.
import assert from 'node:assert/strict'
import {createSocket, type Socket as UdpSocket} from 'node:dgram'
import {type AddressInfo, connect, createServer, type Server} from 'node:net'
import {test, type TestContext} from 'node:test'

import {allocateInterceptAddresses, canonicalName, preferredAddress} from '../../src/lib/sidecar/addresses.js'
import {DnsServer, FrameReader, frame, parseDnsUpstream, upstreamFromResolvConf} from '../../src/lib/sidecar/dns.js'
import {buildQuery, buildResponse, type DnsQuestion, parseQuery, parseResponse, QCLASS_IN, QTYPE, RCODE} from '../../src/lib/sidecar/dns-wire.js'
import {cidrContains} from '../../src/lib/proxy/address.js'

const LOOPBACK = '127.0.0.1'
const question = (name: string, qtype: number = QTYPE.a): DnsQuestion => ({name, qclass: QCLASS_IN, qtype})

async function startDns(t: TestContext, options: Partial<ConstructorParameters<typeof DnsServer>[0]> = {}): Promise<DnsServer> {
  const server = new DnsServer({listen: {host: LOOPBACK, port: 0}, records: new Map([['web.mesh', '100.64.1.2']]), ...options})
  await server.start()
  t.after(() => server.close())
  return server
}

async function udpClient(t: TestContext): Promise<UdpSocket> {
  const socket = createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, LOOPBACK, resolve))
  t.after(() => socket.close())
  return socket
}

/** Send one datagram, wait for one answer (bounded). */
function exchangeUdp(socket: UdpSocket, port: number, message: Buffer, timeoutMs = 3000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.off('message', onMessage)
      resolve(undefined)
    }, timeoutMs)
    const onMessage = (response: Buffer): void => {
      clearTimeout(timer)
      socket.off('message', onMessage)
      resolve(response)
    }

    socket.on('message', onMessage)
    socket.send(message, port, LOOPBACK)
  })
}

/** Write BYTES to a TCP connection (in pieces of CHUNK bytes) and collect the framed answers until COUNT arrive or it closes. */
function exchangeTcp(port: number, bytes: Buffer, count: number, chunk = bytes.length, halfClose = false): Promise<{answers: Buffer[]; closed: boolean}> {
  return new Promise((resolve) => {
    const answers: Buffer[] = []
    const socket = connect({host: LOOPBACK, port})
    const reader = new FrameReader((message) => {
      answers.push(Buffer.from(message))
      if (answers.length === count) finish(false)
    })
    const timer = setTimeout(() => finish(false), 5000)
    function finish(closed: boolean): void {
      clearTimeout(timer)
      socket.destroy()
      resolve({answers, closed})
    }

    socket.on('data', (data: Buffer) => reader.push(data))
    socket.on('error', () => {})
    socket.once('close', () => finish(true))
    for (let offset = 0; offset < bytes.length; offset += chunk) socket.write(bytes.subarray(offset, offset + chunk))
    if (halfClose) socket.end()
  })
}

/** A real resolver peer: answers every A question with 192.0.2.7 over UDP and TCP; silent when told. */
async function startUpstream(t: TestContext, options: {silent?: boolean} = {}): Promise<{port: number; queries: string[]}> {
  const queries: string[] = []
  const answer = (message: Buffer): Buffer | undefined => {
    const parsed = parseQuery(message)
    if (!parsed.ok) return undefined
    queries.push(parsed.query.question.name)
    return buildResponse(parsed.query, {addresses: ['192.0.2.7'], rcode: RCODE.noError})
  }

  const tcp: Server = createServer((socket) => {
    socket.on('error', () => {})
    const reader = new FrameReader((message) => {
      const response = options.silent ? undefined : answer(message)
      if (response) socket.write(frame(response))
    })
    socket.on('data', (data: Buffer) => reader.push(data))
  })
  // TCP first on a free port, then UDP on the same number (UDP ports are far less contended here).
  await new Promise<void>((resolve) => tcp.listen(0, LOOPBACK, resolve))
  const port = (tcp.address() as AddressInfo).port
  const udp = createSocket('udp4')
  udp.on('message', (message, remote) => {
    const response = options.silent ? undefined : answer(message)
    if (response) udp.send(response, remote.port, remote.address)
  })
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject)
    udp.bind(port, LOOPBACK, resolve)
  })
  t.after(() => {
    udp.close()
    tcp.close()
  })
  return {port, queries}
}

test('intercept addresses: stable, inside 100.64.0.0/10, case-insensitive, collisions resolved the same way in any order', () => {
  const first = allocateInterceptAddresses(['web.mesh', 'DB.mesh.', 'api.example'])
  const again = allocateInterceptAddresses(['api.example', 'db.mesh', 'web.mesh'])
  assert.deepEqual([...first.entries()].sort(), [...again.entries()].sort())
  assert.equal(first.get('db.mesh'), preferredAddress('db.mesh'))
  for (const address of first.values()) assert.ok(cidrContains('100.64.0.0/10', address), address)
  assert.equal(canonicalName('Web.Mesh.'), 'web.mesh')

  // Find two names whose first choice collides (22 bits: a birthday collision within a few thousand names).
  const seen = new Map<string, string>()
  let pair: [string, string] | undefined
  for (let index = 0; index < 50_000 && !pair; index++) {
    const name = `svc-${index}.mesh`
    const address = preferredAddress(name)
    const other = seen.get(address)
    if (other) pair = [other, name]
    else seen.set(address, name)
  }

  assert.ok(pair, 'a collision exists among 50k names')
  const forward = allocateInterceptAddresses(pair)
  const backward = allocateInterceptAddresses([...pair].reverse())
  assert.deepEqual(forward, backward)
  assert.notEqual(forward.get(pair[0]), forward.get(pair[1]))
  const [winner] = [...pair].sort()
  assert.equal(forward.get(winner), preferredAddress(winner), 'the name first in sorted order keeps its first choice')
})

test('wire format: queries round-trip; truncated, looping or oversized names are FORMERR, never exceptions', () => {
  const query = buildQuery(0x1234, question('Web.Mesh', QTYPE.aaaa))
  const parsed = parseQuery(query)
  assert.ok(parsed.ok)
  assert.deepEqual(parsed.query.question, {name: 'web.mesh', qclass: QCLASS_IN, qtype: QTYPE.aaaa})
  assert.equal(parsed.query.id, 0x1234)

  for (let cut = 0; cut < query.length; cut++) assert.equal(parseQuery(query.subarray(0, cut)).ok, false, `cut at ${cut}`)
  const pointer = Buffer.from(query)
  pointer[12] = 0xc0
  assert.deepEqual(parseQuery(pointer), {id: 0x1234, ok: false, reason: 'compression pointer or reserved label type in the question', rcode: RCODE.formErr})
  const longName = Array.from({length: 5}, () => 'a'.repeat(63)).join('.')
  const tooLong = Buffer.concat([query.subarray(0, 12), Buffer.from(longName.split('.').flatMap((label) => [label.length, ...Buffer.from(label)])), Buffer.from([0, 0, 1, 0, 1])])
  assert.equal((parseQuery(tooLong) as {reason: string}).reason, 'name longer than 255 bytes')
  const twoQuestions = Buffer.from(query)
  twoQuestions.writeUInt16BE(2, 4)
  assert.equal((parseQuery(twoQuestions) as {rcode: number}).rcode, RCODE.formErr)
  const notify = Buffer.from(query)
  notify.writeUInt16BE(0x2000, 2)
  assert.equal((parseQuery(notify) as {rcode: number}).rcode, RCODE.notImp)

  const response = parseResponse(buildResponse(parsed.query, {addresses: ['100.64.3.4'], authoritative: true, rcode: RCODE.noError}))
  assert.deepEqual(response, {addresses: ['100.64.3.4'], answerCount: 1, authoritative: true, id: 0x1234, rcode: 0, truncated: false})
})

test('UDP: intercepted names get their address (A) or an empty NOERROR (AAAA); no upstream → REFUSED', async (t) => {
  const server = await startDns(t)
  const client = await udpClient(t)
  const port = server.address!.port

  const a = parseResponse((await exchangeUdp(client, port, buildQuery(1, question('WEB.mesh.'))))!)
  assert.deepEqual(a, {addresses: ['100.64.1.2'], answerCount: 1, authoritative: true, id: 1, rcode: RCODE.noError, truncated: false})
  const aaaa = parseResponse((await exchangeUdp(client, port, buildQuery(2, question('web.mesh', QTYPE.aaaa))))!)
  assert.deepEqual({count: aaaa?.answerCount, rcode: aaaa?.rcode}, {count: 0, rcode: RCODE.noError})
  const other = parseResponse((await exchangeUdp(client, port, buildQuery(3, question('example.org'))))!)
  assert.equal(other?.rcode, RCODE.refused)

  server.setRecords(new Map([['db.mesh', '100.64.9.9']]))
  const swapped = parseResponse((await exchangeUdp(client, port, buildQuery(4, question('db.mesh'))))!)
  assert.deepEqual(swapped?.addresses, ['100.64.9.9'])
})

test('UDP and TCP: other names are forwarded to the upstream with the client ID restored; a silent upstream gives SERVFAIL', async (t) => {
  const upstream = await startUpstream(t)
  const server = await startDns(t, {upstream: {host: LOOPBACK, port: upstream.port}})
  const client = await udpClient(t)
  const port = server.address!.port

  const viaUdp = parseResponse((await exchangeUdp(client, port, buildQuery(0xbeef, question('example.org'))))!)
  assert.deepEqual({addresses: viaUdp?.addresses, id: viaUdp?.id}, {addresses: ['192.0.2.7'], id: 0xbeef})
  const viaTcp = await exchangeTcp(port, frame(buildQuery(0xcafe, question('tcp.example.org'))), 1)
  assert.deepEqual(viaTcp.answers.map((answer) => parseResponse(answer)?.addresses), [['192.0.2.7']])
  assert.equal(parseResponse(viaTcp.answers[0])?.id, 0xcafe)
  assert.deepEqual(upstream.queries, ['example.org', 'tcp.example.org'])

  const silent = await startUpstream(t, {silent: true})
  const failing = await startDns(t, {timeoutMs: 200, upstream: {host: LOOPBACK, port: silent.port}})
  const udpFail = parseResponse((await exchangeUdp(client, failing.address!.port, buildQuery(7, question('example.org'))))!)
  assert.deepEqual({id: udpFail?.id, rcode: udpFail?.rcode}, {id: 7, rcode: RCODE.servFail})
  const tcpFail = await exchangeTcp(failing.address!.port, frame(buildQuery(8, question('example.org'))), 1)
  assert.equal(parseResponse(tcpFail.answers[0])?.rcode, RCODE.servFail)
  assert.equal(failing.stats.inFlight, 0)
  assert.equal(failing.stats.upstreamFailures, 2)
})

test('in-flight table is bounded: beyond the limit queries get SERVFAIL at once', async (t) => {
  const silent = await startUpstream(t, {silent: true})
  const server = await startDns(t, {maxInFlight: 2, timeoutMs: 1000, upstream: {host: LOOPBACK, port: silent.port}})
  const client = await udpClient(t)
  client.send(buildQuery(1, question('a.example')), server.address!.port, LOOPBACK)
  client.send(buildQuery(2, question('b.example')), server.address!.port, LOOPBACK)
  const third = parseResponse((await exchangeUdp(client, server.address!.port, buildQuery(3, question('c.example')), 900))!)
  assert.deepEqual({id: third?.id, rcode: third?.rcode}, {id: 3, rcode: RCODE.servFail})
  assert.equal(server.stats.inFlight, 2)
})

test('TCP: frames split byte by byte and pipelined are answered in order; zero-length frame closes the connection', async (t) => {
  const server = await startDns(t)
  const port = server.address!.port
  const two = Buffer.concat([frame(buildQuery(10, question('web.mesh'))), frame(buildQuery(11, question('web.mesh', QTYPE.aaaa)))])
  const split = await exchangeTcp(port, two, 2, 1)
  assert.deepEqual(split.answers.map((answer) => parseResponse(answer)?.id), [10, 11])
  const garbage = await exchangeTcp(port, Buffer.from([0, 0, 1, 2, 3]), 1)
  assert.deepEqual(garbage, {answers: [], closed: true})
})

test('fuzz: random datagrams and truncated TCP frames never crash the server; it still answers afterwards', async (t) => {
  const server = await startDns(t)
  const client = await udpClient(t)
  const port = server.address!.port
  const valid = buildQuery(99, question('web.mesh'))
  let seed = 42
  const random = (): number => {
    seed = (seed * 1_103_515_245 + 12_345) & 0x7f_ff_ff_ff
    return seed / 0x7f_ff_ff_ff
  }

  for (let index = 0; index < 3000; index++) {
    // Half pure noise, half a valid query with a few bytes flipped (reaches deeper parser states).
    const datagram = index % 2 === 0
      ? Buffer.from(Array.from({length: Math.floor(random() * 600)}, () => Math.floor(random() * 256)))
      : Buffer.from(valid).map((byte, position) => (random() < 0.1 && position > 1 ? Math.floor(random() * 256) : byte))
    client.send(datagram, port, LOOPBACK)
  }

  for (let cut = 1; cut < valid.length + 2; cut += 3) {
    const truncated = frame(valid).subarray(0, cut)
    const result = await exchangeTcp(port, truncated, 1, truncated.length, true)
    assert.deepEqual(result, {answers: [], closed: true})
  }

  const answer = parseResponse((await exchangeUdp(client, port, valid))!)
  assert.deepEqual(answer?.addresses, ['100.64.1.2'])
  assert.ok(server.stats.malformed > 0)
})

test('upstream from resolv.conf and --dns-upstream parsing', async (t) => {
  const {mkdtemp, rm, writeFile} = await import('node:fs/promises')
  const {tmpdir} = await import('node:os')
  const dir = await mkdtemp(`${tmpdir()}/ztctl-dns-`)
  t.after(() => rm(dir, {force: true, recursive: true}))
  await writeFile(`${dir}/resolv.conf`, '# comment\nsearch svc.local\nnameserver 10.96.0.10\nnameserver 8.8.8.8\n')
  assert.deepEqual(await upstreamFromResolvConf(`${dir}/resolv.conf`), {host: '10.96.0.10', port: 53})
  assert.equal(await upstreamFromResolvConf(`${dir}/missing`), undefined)
  assert.deepEqual(parseDnsUpstream('127.0.0.1:5353'), {host: '127.0.0.1', port: 5353})
  assert.deepEqual(parseDnsUpstream('::1'), {host: '::1', port: 53})
  assert.throws(() => parseDnsUpstream('resolver.example'), {code: 'ZT_ERR_USAGE'})
})

// The proxy's handshake state machine (paths/proxy-handshake.ts) and the UDP frame reader
// (paths/tunnel-udp.ts) fed what a hostile client sends: seeded random bytes, valid handshakes broken in
// every byte, cut short, grown past the bound, and every one of them in random chunks. Asserted: no
// throw, one verdict per input whatever the chunking, every `connect` names a host and port the exit can
// check, the buffer bound holds, and bytes that arrive while a password is checked are not lost.
import assert from 'node:assert/strict'
import {test} from 'node:test'

import {type HandshakeStep, MAX_HANDSHAKE_BYTES, ProxyHandshake} from '../../src/lib/proxy/paths/proxy-handshake.js'
import {DatagramReader, frameDatagram, MAX_DATAGRAM} from '../../src/lib/proxy/paths/tunnel-udp.js'
import {int, type Rng, rngFor} from '../fuzz/generators.js'

const SEED = Number(process.env.ZTCTL_FUZZ_SEED ?? 15)
const CASES = 4000

const bytes = (rng: Rng, length: number): Buffer => Buffer.from(Array.from({length}, () => int(rng, 256)))
const port16 = (port: number): Buffer => Buffer.from([port >> 8, port & 0xff])

/** Valid client openings of every kind the listener takes (no password check unless `auth`). */
function validOpenings(auth: boolean): {bytes: Buffer; host: string; port: number}[] {
  const socksAuth = auth ? Buffer.from([1, 5, ...Buffer.from('alice'), 6, ...Buffer.from('s3cret')]) : Buffer.alloc(0)
  const greeting = Buffer.from([5, 1, auth ? 2 : 0])
  const basic = auth ? `Proxy-Authorization: Basic ${Buffer.from('alice:s3cret').toString('base64')}\r\n` : ''
  return [
    {bytes: Buffer.concat([greeting, socksAuth, Buffer.from([5, 1, 0, 1, 10, 0, 0, 7]), port16(5432)]), host: '10.0.0.7', port: 5432},
    {bytes: Buffer.concat([greeting, socksAuth, Buffer.from([5, 1, 0, 3, 15]), Buffer.from('web.svc.cluster'), port16(80)]), host: 'web.svc.cluster', port: 80},
    {bytes: Buffer.concat([greeting, socksAuth, Buffer.from([5, 1, 0, 4, ...Array(15).fill(0), 1]), port16(443)]), host: '0:0:0:0:0:0:0:1', port: 443},
    {bytes: Buffer.from(`CONNECT db.svc.test:5432 HTTP/1.1\r\nHost: db.svc.test:5432\r\n${basic}\r\n`), host: 'db.svc.test', port: 5432},
    {bytes: Buffer.from(`CONNECT [::1]:8443 HTTP/1.1\r\n${basic}\r\n`), host: '::1', port: 8443},
    {bytes: Buffer.from(`GET http://web.svc.test:8080/a?b=1 HTTP/1.1\r\nHost: web.svc.test:8080\r\nProxy-Connection: keep-alive\r\n${basic}\r\n`), host: 'web.svc.test', port: 8080},
    {bytes: Buffer.from(`POST http://10.1.2.3/ HTTP/1.0\r\n${basic}Content-Length: 0\r\n\r\n`), host: '10.1.2.3', port: 80},
  ]
}

/** Split DATA at random points (some chunks a single byte). */
function chunks(rng: Rng, data: Buffer): Buffer[] {
  const parts: Buffer[] = []
  for (let offset = 0; offset < data.length;) {
    const size = 1 + int(rng, rng() < 0.3 ? 3 : Math.max(1, data.length))
    parts.push(data.subarray(offset, offset + size))
    offset += size
  }

  return parts
}

interface Verdict {
  /** what the client was sent, in order */
  sent: string
  step: HandshakeStep
}

/**
 * Feed PARTS like the proxy entry does: passwords are right when `password` says so, and what arrives
 * after a `connect` joins its prefix (proxy-entry.ts appends it until the stream opens).
 */
function run(parts: Buffer[], auth: boolean, password = (user: string, pass: string) => user === 'alice' && pass === 's3cret'): Verdict {
  const handshake = new ProxyHandshake({auth})
  let sent = ''
  let step: HandshakeStep = {kind: 'more'}
  const take = (next: HandshakeStep): HandshakeStep => {
    if (next.send) sent += next.send.toString('hex')
    return next.kind === 'auth' ? take(handshake.authenticated(password(next.user, next.password))) : next
  }

  for (const [index, part] of parts.entries()) {
    step = take(handshake.push(part))
    if (step.kind === 'connect') step = {...step, prefix: Buffer.concat([step.prefix, ...parts.slice(index + 1)])}
    if (step.kind === 'fail' || step.kind === 'connect') break
  }

  return {sent, step}
}

/** What a verdict means, comparable across chunkings (a connect's prefix included). */
function summary(verdict: Verdict): string {
  const {step} = verdict
  if (step.kind === 'connect') return `connect ${step.protocol} ${step.host} ${step.port} ${step.prefix.toString('hex')} ${verdict.sent}`
  return step.kind === 'fail' ? `fail ${verdict.sent}` : `more ${verdict.sent}`
}

const HOST = /^(?:[0-9a-fA-F:.]+|[A-Za-z0-9_.-]{1,253})$/

test('valid SOCKS5 and HTTP proxy openings parse the same in any chunking, with or without a password', () => {
  const rng = rngFor(SEED)
  for (const auth of [false, true]) {
    for (const opening of validOpenings(auth)) {
      const trailing = Buffer.from('early bytes of the tunnel')
      const whole = run([Buffer.concat([opening.bytes, trailing])], auth)
      assert.equal(whole.step.kind, 'connect', `${opening.bytes.toString('latin1')}: ${JSON.stringify(whole.step)}`)
      const step = whole.step as Extract<HandshakeStep, {kind: 'connect'}>
      assert.deepEqual([step.host, step.port], [opening.host, opening.port])
      assert.ok(step.prefix.subarray(-trailing.length).equals(trailing), 'what follows the handshake goes first on the stream')
      for (let i = 0; i < 50; i++) assert.equal(summary(run(chunks(rng, Buffer.concat([opening.bytes, trailing])), auth)), summary(whole))
      if (auth) assert.equal(run([opening.bytes], auth, () => false).step.kind, 'fail', 'a wrong password ends it')
    }
  }
})

test('bytes that arrive while a password is checked follow the request on the stream', () => {
  for (const opening of validOpenings(true)) {
    const handshake = new ProxyHandshake({auth: true})
    let step = handshake.push(opening.bytes)
    if (step.kind !== 'auth') {
      assert.equal(step.kind, 'connect')
      continue
    }

    assert.equal(handshake.push(Buffer.from('sent during the check')).kind, 'more')
    step = handshake.authenticated(true)
    while (step.kind === 'auth') step = handshake.authenticated(true)
    assert.equal(step.kind, 'connect', JSON.stringify(step))
    assert.match((step as Extract<HandshakeStep, {kind: 'connect'}>).prefix.toString('latin1'), /sent during the check$/, opening.bytes.toString('latin1'))
  }
})

test(`${CASES} hostile openings (seed ${SEED}): no throw, one verdict whatever the chunking, every connect checkable, the bound holds`, () => {
  const rng = rngFor(SEED)
  const valid = [...validOpenings(false), ...validOpenings(true)]
  const verdicts = {connect: 0, fail: 0, more: 0}
  for (let index = 0; index < CASES; index++) {
    const auth = rng() < 0.5
    const base = valid[int(rng, valid.length)]!.bytes
    let input: Buffer
    switch (int(rng, 6)) {
      case 0: {
        input = bytes(rng, int(rng, 700))
        break
      }

      case 1: { // a valid opening with bytes flipped
        input = Buffer.from(base)
        for (let flips = 1 + int(rng, 4); flips > 0; flips--) input[int(rng, input.length)] = int(rng, 256)
        break
      }

      case 2: { // cut short, or grown with garbage
        input = rng() < 0.5 ? base.subarray(0, int(rng, base.length)) : Buffer.concat([base, bytes(rng, int(rng, 200))])
        break
      }

      case 3: { // a SOCKS5 start with lying lengths
        input = Buffer.concat([Buffer.from([5, int(rng, 256)]), bytes(rng, int(rng, 40)), Buffer.from([5, int(rng, 4), 0, int(rng, 6), int(rng, 256)]), bytes(rng, int(rng, 300))])
        break
      }

      case 4: { // an HTTP head of odd lines
        const lines = Array.from({length: 1 + int(rng, 6)}, () => bytes(rng, int(rng, 60)).toString('latin1').replaceAll('\n', ' '))
        input = Buffer.from(`${['CONNECT', 'GET', 'PUT', 'X'][int(rng, 4)]} ${lines.join('\r\n')}\r\n\r\n`, 'latin1')
        break
      }

      default: { // past the bound
        input = Buffer.concat([Buffer.from('GET http://a/ HTTP/1.1\r\nX: '), Buffer.alloc(MAX_HANDSHAKE_BYTES + int(rng, 4000), 0x61)])
      }
    }

    const context = `case ${index}: ${input.subarray(0, 80).toString('hex')}`
    let whole: Verdict
    try {
      whole = run([input], auth)
    } catch (error) {
      assert.fail(`${context} threw ${(error as Error).stack}`)
    }

    verdicts[whole.step.kind as keyof typeof verdicts]++
    if (input.length > MAX_HANDSHAKE_BYTES && !(whole.step.kind === 'connect' || whole.step.kind === 'fail')) assert.fail(`${context}: more than the bound held`)
    if (whole.step.kind === 'connect') {
      assert.match(whole.step.host, HOST, context)
      assert.ok(whole.step.port >= 1 && whole.step.port <= 65_535, context)
    }

    // Chunking changes nothing, but a verdict that needs the bound may come at another byte: compare
    // only inputs within it.
    if (input.length <= MAX_HANDSHAKE_BYTES) assert.equal(summary(run(chunks(rng, input), auth)), summary(whole), context)
  }

  assert.ok(verdicts.fail > CASES / 4 && verdicts.connect > 0, `every verdict reached: ${JSON.stringify(verdicts)}`)
})

test('the UDP frame reader survives any chunking, empty chunks included, and holds one partial frame at most', () => {
  const rng = rngFor(SEED)
  for (let round = 0; round < 200; round++) {
    const datagrams = Array.from({length: 1 + int(rng, 8)}, () => bytes(rng, [0, 1, 2, int(rng, 1500), int(rng, 9000)][int(rng, 5)]!))
    if (round % 50 === 0) datagrams.push(Buffer.alloc(MAX_DATAGRAM, 7))
    const stream = Buffer.concat(datagrams.map((datagram) => frameDatagram(datagram)))
    const reader = new DatagramReader()
    const out: Buffer[] = []
    for (const part of chunks(rng, stream)) {
      out.push(...reader.push(part))
      if (rng() < 0.2) out.push(...reader.push(Buffer.alloc(0)))
    }

    assert.deepEqual(out.map((datagram) => datagram.toString('hex')), datagrams.map((datagram) => datagram.toString('hex')), `round ${round}`)
  }

  // Garbage is frames too (any two bytes are a length): whatever arrives, no throw, and what comes out
  // is exactly what a reader given it all at once gives, minus the one frame still partial.
  for (let round = 0; round < 200; round++) {
    const garbage = bytes(rng, int(rng, 30_000))
    const reader = new DatagramReader()
    let total = 0
    for (const part of chunks(rng, garbage)) for (const datagram of reader.push(part)) total += 2 + datagram.length
    const whole = new DatagramReader().push(garbage).reduce((sum, datagram) => sum + 2 + datagram.length, 0)
    assert.equal(total, whole)
    assert.ok(garbage.length - total <= 2 + MAX_DATAGRAM, `at most one partial frame left (${garbage.length - total} bytes)`)
  }
})

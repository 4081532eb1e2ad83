// The app streams' framing (src/lib/apps/wire.ts) on its own: frames survive any split of the byte
// stream, every kind of garbage ends in a ProtocolError (never a crash, never a large buffer), the
// reader never holds more than one header and one payload, the JSON payloads are checked on either side,
// and a client facing a garbage-speaking agent ends with a ZtError.
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {duplexPair, PassThrough} from 'node:stream'
import {test} from 'node:test'

import {FrameChannel} from '../../src/lib/apps/channel.js'
import {relayOutput} from '../../src/lib/apps/client/process-io.js'
import {asZtError} from '../../src/lib/apps/client/session.js'
import {readError, readExit, readFileInfo, readOpen, readProcessReady} from '../../src/lib/apps/messages.js'
import {encodeFrame, type Frame, FRAME_HEADER_BYTES, FrameReader, FrameType, MAX_DATA_PAYLOAD, ProtocolError, readResize, resizePayload} from '../../src/lib/apps/wire.js'
import {ZtError} from '../../src/lib/errors.js'

const toClient = (): FrameReader => new FrameReader('toClient')

test('frames come out whole and in order however the stream is split', () => {
  const frames = [
    encodeFrame(FrameType.Ready, {argv: ['/bin/sh']}),
    encodeFrame(FrameType.Stdout, Buffer.from('hello')),
    encodeFrame(FrameType.Stderr, Buffer.alloc(0)),
    encodeFrame(FrameType.Data, randomBytes(70_000)),
    encodeFrame(FrameType.Exit, {code: 3, durationMs: 12}),
  ]
  const stream = Buffer.concat(frames)
  for (const size of [1, 2, 3, 5, 7, 4096, 65_536, stream.length]) {
    const reader = toClient()
    const out = []
    for (let offset = 0; offset < stream.length; offset += size) out.push(...reader.push(stream.subarray(offset, offset + size)))
    reader.end()
    assert.deepEqual(out.map((frame) => frame.type), [FrameType.Ready, FrameType.Stdout, FrameType.Stderr, FrameType.Data, FrameType.Exit], `chunks of ${size}`)
    assert.deepEqual(Buffer.concat(out.map((frame) => encodeFrame(frame.type, frame.payload))), stream, `chunks of ${size}: the same bytes`)
    assert.equal(reader.buffered, 0)
  }
})

test('a resize is four bytes, clamped; OPEN and EXIT are checked field by field', () => {
  assert.deepEqual(readResize(resizePayload(132, 43)), {columns: 132, rows: 43})
  assert.deepEqual(readResize(resizePayload(0, 99_999)), {columns: 1, rows: 10_000})
  const open = (payload: object) => ({payload: Buffer.from(JSON.stringify(payload)), type: FrameType.Open})
  assert.deepEqual(readOpen('terminal', open({columns: 80, rows: 24, term: 'xterm', v: 1})), {columns: 80, rows: 24, term: 'xterm'})
  assert.throws(() => readOpen('terminal', open({columns: 80, rows: 24, term: 'x; rm -rf /', v: 1})), ProtocolError)
  assert.throws(() => readOpen('terminal', open({columns: 80, rows: 24, term: 'xterm', v: 2})), /unsupported app protocol version 2/)
  assert.throws(() => readOpen('file', open({name: 'a', offset: -1, op: 'get', v: 1})), /byte count/)
  assert.throws(() => readOpen('script', open({argv: [], v: 1})), /argv/)
  assert.throws(() => readOpen('script', {payload: Buffer.from('[1,2]'), type: FrameType.Open}), /JSON object/)
  assert.throws(() => readExit({payload: Buffer.from('{"code":256}'), type: FrameType.Exit}), /code 0–255/)
})

test('garbage ends in a ProtocolError naming the problem, before any payload is buffered', () => {
  const header = (type: number, length: number): Buffer => {
    const bytes = Buffer.alloc(FRAME_HEADER_BYTES)
    bytes.writeUInt8(type, 0)
    bytes.writeUInt32BE(length, 1)
    return bytes
  }

  const cases: [string, Buffer, RegExp][] = [
    ['an unknown type', header(0x47, 3), /unknown frame type 71/],
    ['a frame of the other direction', header(FrameType.Stdin, 1), /STDIN frames do not travel to the client/],
    ['a huge length', header(FrameType.Data, 0xFF_FF_FF_FF), /DATA frame of 4294967295 bytes \(allowed 0–262144\)/],
    ['a data frame just over the limit', header(FrameType.Stdout, MAX_DATA_PAYLOAD + 1), /STDOUT frame of 262145 bytes/],
    ['an empty JSON frame', header(FrameType.Exit, 0), /EXIT frame of 0 bytes/],
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\n\r\n'), /unknown frame type 71/],
  ]
  for (const [what, bytes, message] of cases) {
    const reader = toClient()
    assert.throws(() => reader.push(bytes), (error: unknown) => error instanceof ProtocolError && message.test(error.message), what)
    assert.ok(reader.buffered <= FRAME_HEADER_BYTES, `${what}: nothing beyond the header is kept`)
    assert.throws(() => reader.push(Buffer.from([1, 2, 3])), ProtocolError, `${what}: the reader stays broken`)
  }

  const resize = new FrameReader('toAgent')
  assert.throws(() => resize.push(header(FrameType.Resize, 5)), /RESIZE frame of 5 bytes \(allowed 4–4\)/)
  const truncated = toClient()
  truncated.push(encodeFrame(FrameType.Stdout, Buffer.from('abcdef')).subarray(0, 8))
  assert.throws(() => truncated.end(), /the stream ended inside a frame \(8 bytes of it read\)/)
})

test('random bytes never crash the reader and never make it hold more than one frame', () => {
  for (let round = 0; round < 2000; round++) {
    const reader = new FrameReader(round % 2 === 0 ? 'toAgent' : 'toClient')
    const bytes = randomBytes(1 + (round % 300))
    try {
      for (let offset = 0; offset < bytes.length; offset += 1 + (round % 17)) reader.push(bytes.subarray(offset, offset + 1 + (round % 17)))
      reader.end()
    } catch (error) {
      assert.ok(error instanceof ProtocolError, `round ${round}: ${(error as Error).message}`)
    }

    assert.ok(reader.buffered <= FRAME_HEADER_BYTES + MAX_DATA_PAYLOAD)
  }
})

test('senders cannot build frames the reader would refuse', () => {
  assert.throws(() => encodeFrame(FrameType.Resize, Buffer.alloc(5)), /RESIZE payload of 5 bytes exceeds 4/)
  assert.throws(() => encodeFrame(FrameType.Data, Buffer.alloc(MAX_DATA_PAYLOAD + 1)), RangeError)
})

test('the JSON payloads either side reads survive any JSON: a checked value or a ProtocolError', () => {
  const values: unknown[] = [null, true, 0, -1, 1e300, 'x', [], [1], {}, {v: 1}, {code: 'x'.repeat(300)}, {argv: [{}]}, {size: -5, sha256: 'zz'}]
  const random = (depth: number): unknown => {
    const pick = Math.floor(Math.random() * 7)
    if (depth > 2 || pick === 0) return values[Math.floor(Math.random() * values.length)]
    if (pick === 1) return Array.from({length: Math.floor(Math.random() * 4)}, () => random(depth + 1))
    const keys = ['v', 'code', 'message', 'argv', 'shell', 'name', 'op', 'offset', 'size', 'sha256', 'modified', 'columns', 'rows', 'term', 'signal', 'durationMs', '__proto__']
    return Object.fromEntries(keys.filter(() => Math.random() < 0.4).map((key) => [key, random(depth + 1)]))
  }

  const readers: [string, (frame: Frame) => unknown][] = [
    ['READY (file)', readFileInfo], ['READY (process)', readProcessReady], ['EXIT', readExit], ['ERROR', readError],
    ...(['file', 'script', 'terminal'] as const).map((app): [string, (frame: Frame) => unknown] => [`OPEN (${app})`, (frame) => readOpen(app, frame)]),
  ]
  for (let round = 0; round < 1000; round++) {
    const payload = round % 10 === 0 ? randomBytes(round % 40) : Buffer.from(JSON.stringify(random(0)) ?? 'null')
    for (const [what, read] of readers) {
      try {
        read({payload, type: FrameType.Open})
      } catch (error) {
        assert.ok(error instanceof ProtocolError, `${what} of ${payload.toString('utf8').slice(0, 200)}: ${(error as Error).message}`)
      }
    }
  }

  // What a hostile agent says is cut to size before the client prints it.
  const error = readError({payload: Buffer.from(JSON.stringify({code: 'C'.repeat(1000), message: 'm'.repeat(100_000), suggestion: 's'.repeat(100_000)})), type: FrameType.Error})
  assert.deepEqual([error.code.length, error.message.length, error.suggestion?.length], [64, 2000, 2000])
})

test('a client facing an agent that sends garbage ends with a ZtError, holding no more than one frame', async () => {
  const cases: [string, Buffer, RegExp][] = [
    ['bytes that are no frames', Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), /broke the app protocol: unknown frame type 72/],
    ['a frame only clients send', encodeFrame(FrameType.Stdin, Buffer.from('x')).subarray(0, FRAME_HEADER_BYTES), /STDIN frames do not travel to the client/],
    ['a 4 GiB DATA frame', Buffer.from([FrameType.Data, 0xFF, 0xFF, 0xFF, 0xFF]), /DATA frame of 4294967295 bytes/],
    ['an EXIT that is not JSON', encodeFrame(FrameType.Exit, Buffer.from('{"code":')), /EXIT does not carry JSON/],
    ['an EXIT with a code past 255', encodeFrame(FrameType.Exit, {code: 1000, durationMs: 1}), /EXIT needs a code 0–255 or null/],
    ['an end before EXIT', encodeFrame(FrameType.Stdout, Buffer.from('half')), /ZT_ERR_APP_CLOSED|ended before the program exited/],
  ]
  for (const [what, bytes, message] of cases) {
    const [agentSide, clientSide] = duplexPair()
    const channel = new FrameChannel(clientSide, 'toClient')
    const sink = new PassThrough()
    agentSide.end(bytes)
    const failure = await relayOutput(channel, {stderr: sink, stdout: sink}, 'agent-x', 'program').then(() => undefined, (error: unknown) => asZtError(error, 'agent-x', 'script'))
    assert.ok(failure && ZtError.is(failure), `${what}: a ZtError`)
    assert.match(`${failure.code}: ${failure.message}`, message, what)
    channel.destroy()
  }
})

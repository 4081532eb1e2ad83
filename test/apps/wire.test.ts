// The app streams' framing (src/lib/apps/wire.ts) on its own: frames survive any split of the byte
// stream, every kind of garbage ends in a ProtocolError (never a crash, never a large buffer), and the
// reader never holds more than one header and one payload.
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {test} from 'node:test'

import {readExit, readOpen} from '../../src/lib/apps/messages.js'
import {encodeFrame, FRAME_HEADER_BYTES, FrameReader, FrameType, MAX_DATA_PAYLOAD, ProtocolError, readResize, resizePayload} from '../../src/lib/apps/wire.js'

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

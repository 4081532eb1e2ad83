// The CNI ↔ agent NDJSON parser: valid messages round-trip, garbage of every kind becomes a typed
// InpodProtocolError (never another exception), and a line over 64 KiB is refused without buffering on.
import assert from 'node:assert/strict'
import {test} from 'node:test'

import {INPOD_MAX_LINE_BYTES, InpodLineParser, InpodProtocolError, type InpodAdd, encodeInpodMessage} from '../../src/lib/inpod/protocol.js'

const add: InpodAdd = {type: 'add', uid: 'pod-1', workload: {namespace: 'default', name: 'web', serviceAccount: 'web'}, netns: '/var/run/netns/p1', ips: ['10.0.0.2']}

test('messages split across chunks decode to the same values', () => {
  const parser = new InpodLineParser()
  const bytes = Buffer.from(encodeInpodMessage(add) + encodeInpodMessage({type: 'delete', uid: 'pod-1'}) + encodeInpodMessage({type: 'snapshot', workloads: [add]}))
  const decoded = []
  for (let offset = 0; offset < bytes.length; offset += 7) decoded.push(...parser.push(bytes.subarray(offset, offset + 7)))
  assert.deepEqual(decoded, [add, {type: 'delete', uid: 'pod-1'}, {type: 'snapshot', workloads: [add]}])
  assert.deepEqual(new InpodLineParser().push(Buffer.from('{"type":"hello","version":1}\n{"type":"ack","uid":"x","error":"boom"}\n')), [
    {type: 'hello', version: 1},
    {type: 'ack', uid: 'x', error: 'boom'},
  ])
})

test('garbage becomes InpodProtocolError, whatever its shape', () => {
  const garbage = [
    'not json',
    '[1,2,3]',
    'null',
    '{"type":"launch-missiles"}',
    '{"type":"add"}',
    '{"type":"add","uid":"u","workload":{"namespace":"a","name":"b"},"netns":"/x","ips":[]}',
    '{"type":"add","uid":"u","workload":{"namespace":"a","name":"b","serviceAccount":"c"},"netns":"relative","ips":[]}',
    '{"type":"add","uid":"u","workload":{"namespace":"a","name":"b","serviceAccount":"c"},"netns":"/x","ips":["not-an-ip"]}',
    '{"type":"snapshot","workloads":[{"type":"add"}]}',
    '{"type":"snapshot","workloads":"all"}',
    '{"type":"delete","uid":""}',
    '{"type":"hello","version":"one"}',
    '\u0000\u0001\u0002',
  ]
  for (const line of garbage) {
    assert.throws(() => new InpodLineParser().push(Buffer.from(`${line}\n`)), InpodProtocolError, line)
  }
})

test('a line longer than 64 KiB is refused before the newline arrives', () => {
  const parser = new InpodLineParser()
  parser.push(Buffer.alloc(INPOD_MAX_LINE_BYTES - 1, 0x61))
  assert.throws(() => parser.push(Buffer.from('aa')), (error: unknown) => error instanceof InpodProtocolError && error.code === 'ZT_ERR_INPOD_PROTOCOL')
})

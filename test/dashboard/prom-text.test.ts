// The Prometheus text reader on the agents' real exposition (the Metrics class they serve), and on garbage.
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {test} from 'node:test'

import {parsePrometheusText, parseSampleLine} from '../../src/lib/dashboard/prom-text.js'
import {Metrics} from '../../src/lib/proxy/observe/metrics.js'

test('reads the istio_tcp_* counters an agent renders, labels unescaped', () => {
  const metrics = new Metrics({component: 'ztunnel', tag: 'test'})
  const labels = {destinationService: 'tcp/web', destinationWorkload: 'agent-b', reporter: 'destination' as const, sourcePrincipal: 'spiffe://td/identity/a"\\b', sourceWorkload: 'agent-a'}
  metrics.connectionClosed(labels, {received: 300, sent: 700}, metrics.connectionOpened(labels))
  metrics.connectionClosed({...labels, responseFlags: 'DENY'}, {received: 0, sent: 0}, metrics.connectionOpened({...labels, responseFlags: 'DENY'}))
  const {invalid, samples} = parsePrometheusText(metrics.render(), {prefix: 'istio_tcp_'})
  assert.equal(invalid, 0)
  const find = (name: string, flags: string) => samples.find((s) => s.name === name && s.labels.response_flags === flags)
  assert.equal(find('istio_tcp_connections_opened_total', '-')?.value, 1)
  assert.equal(find('istio_tcp_received_bytes_total', '-')?.value, 300)
  assert.equal(find('istio_tcp_sent_bytes_total', '-')?.value, 700)
  assert.equal(find('istio_tcp_connections_failed_total', 'DENY')?.value, 1)
  assert.equal(find('istio_tcp_connections_opened_total', '-')?.labels.source_principal, 'spiffe://td/identity/a"\\b')
  assert.equal(find('istio_tcp_connections_opened_total', '-')?.labels.source_workload, 'agent-a')
  assert.ok(!samples.some((s) => s.name === 'istio_build'), 'the prefix filters')
})

test('the format: timestamps, special values, empty label sets, trailing commas', () => {
  const up = parseSampleLine('up 1 1700000000000')!
  assert.deepEqual([up.name, {...up.labels}, up.value], ['up', {}, 1])
  assert.equal(parseSampleLine('x{} +Inf')?.value, Infinity)
  assert.ok(Number.isNaN(parseSampleLine('x NaN')!.value))
  assert.deepEqual({...parseSampleLine('x{a="1",b="two\\nlines",} 2.5e3')?.labels}, {a: '1', b: 'two\nlines'})
})

test('garbage is skipped and counted, never thrown, and everything is bounded', () => {
  for (const line of ['x{a="1" 2', 'x{a=1} 2', 'x{a="\\q"} 2', 'x{"a"="1"} 2', 'x{a="1"}', 'x 1 2 3', 'x abc', '{a="1"} 1', 'x{a="1"}} 1', 'x 1 notatime']) {
    assert.equal(parseSampleLine(line), undefined, line)
  }

  for (let round = 0; round < 200; round++) {
    const text = randomBytes(2048).toString('latin1')
    const {invalid, samples} = parsePrometheusText(text)
    assert.ok(invalid + samples.length <= text.split('\n').length)
  }

  assert.equal(parsePrometheusText(`x{${'a="1",'.repeat(100)}} 1`).invalid, 1, 'too many labels')
  assert.equal(parsePrometheusText(`x{a="${'y'.repeat(20_000)}"} 1`).invalid, 1, 'a line longer than the bound')
  assert.equal(parsePrometheusText('x 1\n'.repeat(500), {maxSamples: 100}).samples.length, 100)
})

import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {test} from 'node:test'

import {Metrics} from '../../src/lib/proxy/observe/metrics.js'
import {requireTools} from '../helpers/tools.js'

/** Feed TEXT to `promtool check metrics` (Debian's prometheus package) and return its verdict. */
async function promtoolCheck(text: string): Promise<{code: number; output: string}> {
  requireTools('promtool')
  return new Promise((resolve) => {
    const child = execFile('promtool', ['check', 'metrics'], {timeout: 20_000}, (error, stdout, stderr) => {
      resolve({code: error ? Number((error as {code?: number}).code ?? 1) : 0, output: stdout + stderr})
    })
    child.stdin!.end(text)
  })
}

test('Istio names, the full label set with unknown for missing values, and promtool accepts the output', async () => {
  const metrics = new Metrics({component: 'ztctl-agent', tag: '0.1.0'})
  const labels = {destinationPrincipal: 'spiffe://td/identity/b', destinationService: 'tcp/web', destinationWorkload: 'b', reporter: 'destination' as const, sourcePrincipal: 'spiffe://td/identity/a', sourceWorkload: 'a'}
  metrics.connectionOpened(labels)
  metrics.connectionClosed(labels, {received: 100, sent: 2000})
  metrics.connectionOpened({...labels, responseFlags: 'DENY'})
  metrics.connectionClosed({...labels, responseFlags: 'DENY'}, {received: 0, sent: 0})
  metrics.connectionFailed({reporter: 'destination', responseFlags: 'TLS_FAILURE'})
  const text = metrics.render()
  for (const name of ['istio_tcp_connections_opened_total', 'istio_tcp_connections_closed_total', 'istio_tcp_received_bytes_total', 'istio_tcp_sent_bytes_total', 'istio_tcp_connections_failed_total']) {
    assert.match(text, new RegExp(`^# TYPE ${name} counter$`, 'm'))
  }

  assert.match(text, /^istio_build\{component="ztctl-agent",tag="0.1.0"\} 1$/m)
  assert.match(text, /^istio_tcp_sent_bytes_total\{reporter="destination",source_workload="a",source_canonical_service="a",source_canonical_revision="unknown",.*destination_service="tcp\/web",destination_service_namespace="unknown",destination_service_name="web",.*destination_principal="spiffe:\/\/td\/identity\/b",.*request_protocol="tcp",response_flags="-",connection_security_policy="mutual_tls"\} 2000$/m)
  assert.match(text, /^istio_tcp_connections_failed_total\{.*response_flags="DENY".*\} 1$/m)
  assert.equal(metrics.total('failed'), 2)
  assert.equal(metrics.total('received', {destinationService: 'tcp/web'}), 100)

  const verdict = await promtoolCheck(text)
  assert.equal(verdict.code, 0, verdict.output)
  assert.doesNotMatch(verdict.output, /error/i)
})

test('label values with quotes, backslashes and newlines stay valid exposition', async () => {
  const metrics = new Metrics({component: 'x', tag: 'y'})
  metrics.connectionOpened({destinationService: 'tcp/a"b\\c\nd', reporter: 'source'})
  const text = metrics.render()
  assert.match(text, /destination_service="tcp\/a\\"b\\\\c\\nd"/)
  const verdict = await promtoolCheck(text)
  assert.equal(verdict.code, 0, verdict.output)
})

test('process metrics (RSS, CPU, open fds, event-loop lag) in Prometheus text that promtool accepts', async () => {
  const {processMetrics} = await import('../../src/lib/proxy/observe/process-metrics.js')
  processMetrics() // starts measuring the loop, as an agent does when it opens its metrics port
  // Block the loop for a moment so the lag has something to show.
  await new Promise((resolve) => setTimeout(resolve, 30))
  const busyUntil = Date.now() + 40
  while (Date.now() < busyUntil) Math.sqrt(Math.random())
  await new Promise((resolve) => setTimeout(resolve, 30))
  const text = new Metrics({component: 'ztctl-agent', tag: 't'}).render() + processMetrics().render()
  const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1])
  assert.ok(value('process_resident_memory_bytes') > 10 * 1024 * 1024)
  assert.ok(value('process_cpu_seconds_total') > 0)
  assert.ok(value('process_open_fds') >= 3)
  assert.ok(value('process_max_fds') >= value('process_open_fds'))
  assert.ok(Math.abs(value('process_start_time_seconds') - (Date.now() / 1000 - process.uptime())) < 5)
  assert.ok(value('nodejs_eventloop_lag_p99_seconds') >= 0.02, `lag after a 40 ms block: ${value('nodejs_eventloop_lag_p99_seconds')}`)
  assert.match(text, /^# TYPE process_cpu_seconds_total counter$/m)
  const verdict = await promtoolCheck(text)
  assert.equal(verdict.code, 0, verdict.output)
  assert.doesNotMatch(verdict.output, /error/i)
})

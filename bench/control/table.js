// table.js - the fan-out table of bench/control/run.js (markdown), with the goals marked.
//   node bench/control/table.js OUT/control.jsonl      # re-render a run's table
import {readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'

const MB = 1e6
const GOAL_FANOUT_MS = 1000
const GOAL_RSS_BYTES = 1e9

const fixed = (value, digits = 0) => (Number.isFinite(value) ? value.toLocaleString('en-US', {maximumFractionDigits: digits, minimumFractionDigits: digits}) : 'n/a')
const mb = (kib) => fixed((kib * 1024) / MB, 0)
const pct = (value) => (Number.isFinite(value) ? `${Math.round(value * 100)} %` : 'n/a')
const verdict = (ok) => (ok === undefined ? '' : ok ? 'met' : '**MISSED**')

export function renderTable(results, {changes, out}) {
  const lines = [
    `## Control-plane fan-out (${out ?? 'a run'}; ${changes} changes per cell, ${Math.max(2, changes >> 1)} after the restart)`,
    '',
    '| W workloads | N agents | snapshot MB | all subscribed s | CPU s | peak RSS MB | RSS MB | change → last ack p50 / p99 ms | spread | recorded p50 / p99 ms | delta bytes | CPU ms per change | bench agents CPU ms per change | restart: start / resume s | after restart: last ack p50 / p99 ms | peak RSS after restart MB |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ]
  for (const row of results) {
    const {afterRestart: again, change, restart, subscribe} = row
    lines.push(`| ${fixed(row.w)} | ${fixed(row.n)} | ${fixed(subscribe.bytesPerSnapshot / MB, 2)} | ${fixed(subscribe.lastAckMs / 1000, 1)} | ${fixed(subscribe.cpuSeconds, 1)} | ` +
      `${mb(subscribe.peakRssKiB)} | ${mb(row.steadyRssKiB)} | ${fixed(change.lastAckP50Ms)} / ${fixed(change.lastAckP99Ms)} | ${pct(change.lastAckSpread)} | ` +
      `${fixed(change.recordedP50Ms)} / ${fixed(change.recordedP99Ms)} | ${fixed(change.deltaBytes)} | ${fixed(change.cpuMsPerChange, 1)} | ${fixed(change.benchCpuMsPerChange, 1)} | ` +
      `${fixed(restart.startMs / 1000, 1)} / ${fixed(restart.resumeMs / 1000, 1)} | ${fixed(again.lastAckP50Ms)} / ${fixed(again.lastAckP99Ms)} | ${mb(restart.peakRssKiB)} |`)
    if (row.errors?.length) lines.push(`| | | errors: ${row.errors.join('; ').replaceAll('|', '/')} |`)
  }

  lines.push('', ...goals(results), '',
    'W grows in place; N agents subscribe from nothing in every cell. "recorded" = until GET /v1/agents shows every ack (what `--wait` polls).',
    'Peak RSS is VmHWM of the controller process over the phase (reset before it). Spread = (max − min) / median of the last-ack times of the cell\'s changes.')
  return lines.join('\n')
}

function goals(results) {
  const rows = []
  const thousand = results.filter((row) => row.n >= 1000)
  if (thousand.length > 0) {
    const worst = Math.max(...thousand.flatMap((row) => [row.change.recordedP99Ms, row.afterRestart.recordedP99Ms]))
    rows.push(`- one change to ${fixed(thousand[0].n)} agents, recorded p99 (worst cell, also after the restart): ${fixed(worst)} ms — goal < ${GOAL_FANOUT_MS} ms: ${verdict(worst < GOAL_FANOUT_MS)}`)
  }

  const biggest = results.filter((row) => row.w === Math.max(...results.map((other) => other.w)))
  if (biggest.length > 0) {
    const peak = Math.max(...biggest.flatMap((row) => [row.subscribe.peakRssKiB, row.change.peakRssKiB, row.restart.peakRssKiB])) * 1024
    rows.push(`- ${fixed(biggest[0].w)} workloads, controller peak RSS (any N, any phase): ${fixed(peak / MB)} MB — goal < ${fixed(GOAL_RSS_BYTES / MB)} MB: ${verdict(peak < GOAL_RSS_BYTES)}`)
  }

  const byW = [...new Set(results.map((row) => row.w))].sort((a, b) => a - b)
  if (byW.length > 1) {
    const delta = (w) => Math.max(...results.filter((row) => row.w === w).map((row) => row.change.deltaBytes))
    const growth = delta(byW.at(-1)) / delta(byW[0])
    rows.push(`- bytes per delta at W = ${fixed(byW.at(-1))} ÷ at W = ${fixed(byW[0])}: ${fixed(growth, 2)}× (state grew ${fixed(byW.at(-1) / byW[0])}×) — goal O(change): ${verdict(growth < 1.5)}`)
  }

  return rows
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const results = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line))
  process.stdout.write(renderTable(results, {changes: results[0]?.change.count ?? 0, out: process.argv[2]}) + '\n')
}

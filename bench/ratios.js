/* global console, process */
// ratios.js - turns one benchmark run into the ratio table the issue asks for.
//
//   node bench/ratios.js table OUT_DIR                 # markdown: ztctl vs stunnel/haproxy/nghttpx, targets
//   node bench/ratios.js ambient OUT_DIR/ambient        # markdown: ztctl-ambient vs direct/stunnel/haproxy/ztctl
//   node bench/ratios.js loaded OUT_DIR/loaded         # markdown: added round trip quiet and under a CPU hog
//   node bench/ratios.js coldstart TOOL TIMES.json...   # hyperfine-shaped times -> coldstart.json (stdout)
//   node bench/ratios.js coldstart-table coldstart.json # markdown table of the cold-start figures
//
// Reads what the harness wrote into OUT_DIR (raw.jsonl, path-notes.txt; see ../shared/bench/README.md)
// plus coldstart.json and agent-rss.jsonl from bench/coldstart.sh and bench/agent-rss.sh.
// Only ratios within one run mean anything on this VM (10-30 % drift between runs).
import {existsSync, readFileSync} from 'node:fs'
import path from 'node:path'

const OURS = process.env.OURS || 'ztctl'
// node-h2 (the shared ~150-line prototype) shows Node's own ceiling when a run includes it; ztctl-node is
// our agent on its node:http2 data path (--data-path node), to show what the native one changes
const PEERS = ['stunnel', 'haproxy', 'nghttpx-native', 'node-h2', 'ztctl-node']
const MB = 1e6 // the issue's "60 MB" read as 10^6 bytes, the stricter reading

const median = (values) => {
  const sorted = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

const spread = (values) => {
  const finite = values.filter((x) => typeof x === 'number' && Number.isFinite(x))
  if (finite.length < 2) return Number.NaN
  return (Math.max(...finite) - Math.min(...finite)) / Math.abs(median(finite))
}

const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toLocaleString('en-US', {maximumFractionDigits: digits, minimumFractionDigits: digits}) : 'n/a')
const fmtRatio = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : 'n/a')
const fmtPct = (x) => (Number.isFinite(x) ? `${Math.round(x * 100)} %` : 'n/a')

function readJsonLines(file) {
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line))
}

/** path -> metric -> [data of every successful rep] */
function loadRaw(outDir) {
  const byPath = new Map()
  for (const row of readJsonLines(path.join(outDir, 'raw.jsonl'))) {
    if (!row.data || row.data.error) continue
    if (!byPath.has(row.path)) byPath.set(row.path, new Map())
    const metrics = byPath.get(row.path)
    if (!metrics.has(row.metric)) metrics.set(row.metric, [])
    metrics.get(row.metric).push({...row.data, rep: row.rep})
  }

  return byPath
}

// ---------- cold start ----------

/** Pool the runs of every times file (hyperfine's export shape) per command. */
function coldstartResult(tool, timesFiles) {
  const pooled = new Map()
  for (const file of timesFiles) {
    for (const {command, times} of JSON.parse(readFileSync(file, 'utf8')).results) {
      pooled.set(command, [...(pooled.get(command) ?? []), ...times])
    }
  }

  const commands = {}
  for (const [command, times] of pooled) {
    const ms = times.map((seconds) => seconds * 1000)
    const mean = ms.reduce((a, b) => a + b, 0) / ms.length
    commands[command] = {
      max_ms: Math.max(...ms),
      mean_ms: mean,
      median_ms: median(ms),
      min_ms: Math.min(...ms),
      runs: ms.length,
      stddev_ms: Math.sqrt(ms.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, ms.length - 1)),
    }
  }

  return {commands, tool}
}

const KUBECTL = 'kubectl version --client'

function coldstartTable(result) {
  const kubectl = result.commands[KUBECTL]?.median_ms
  const lines = [
    `### CLI cold start (${result.tool}; median of ${Object.values(result.commands)[0]?.runs ?? 0} runs each, warm caches)`,
    '',
    '| command | median ms | mean ± sd ms | min–max ms | vs kubectl |',
    '|---|---|---|---|---|',
  ]
  for (const [name, c] of Object.entries(result.commands)) {
    lines.push(`| \`${name}\` | ${fmt(c.median_ms)} | ${fmt(c.mean_ms)} ± ${fmt(c.stddev_ms)} | ${fmt(c.min_ms)}–${fmt(c.max_ms)} | ${fmtRatio(c.median_ms / kubectl)} |`)
  }

  return lines.join('\n')
}

// ---------- the ratio table ----------

/**
 * One row per figure the issue names. `value(path)` reads the run; a target compares ours with a peer
 * (`ref`, `factor`) or with an absolute limit (`limit`), in the direction `op`.
 */
function metricRows(raw, agentRss) {
  const med = (p, metric, field) => median(((raw.get(p) || new Map()).get(metric) || []).map((d) => d[field]))
  const all = (p, metric, field) => ((raw.get(p) || new Map()).get(metric) || []).map((d) => d[field])
  // a rep whose holder established no connection divides by 1 in the harness: not a per-connection figure
  const heldRss = (p) => ((raw.get(p) || new Map()).get('mem') || []).filter((d) => d.conns > 0).map((d) => d.rss_kib_per_conn)
  const hasDirect = raw.has('direct')
  const added = (field) => (p) => med(p, 'lat', field) - (hasDirect ? med('direct', 'lat', field) : 0)
  const addedLabel = hasDirect ? 'added over direct' : 'raw (direct not in this run)'
  const agentNames = [...new Set(agentRss.flatMap((r) => Object.keys(r.rss_kib_by)))]
  const agentMb = (field, name) => (median(agentRss.map((r) => r[field]?.[name])) * 1024) / MB
  const secs = (field) => median(agentRss.map((r) => r[field]))

  return [
    {label: '1-stream throughput, Gbit/s', spreadOf: all(OURS, 'tput_p1', 'gbps'),
      target: {op: '>=', factor: 1, ref: 'haproxy'}, value: (p) => med(p, 'tput_p1', 'gbps')},
    {label: '4-stream throughput, Gbit/s', spreadOf: all(OURS, 'tput_p4', 'gbps'),
      target: {op: '>=', factor: 1, ref: 'stunnel'}, value: (p) => med(p, 'tput_p4', 'gbps')},
    {digits: 2, label: 'proxy CPU s/GiB (1 stream)', value: (p) => med(p, 'tput_p1', 'proxy_cpu_s_per_gib')},
    {label: `round trip p50, µs ${addedLabel}`, spreadOf: all(OURS, 'lat', 'p50_us'),
      target: {op: '<=', factor: 1, ref: 'haproxy'}, value: added('p50_us')},
    {label: `round trip p99, µs ${addedLabel}`, spreadOf: all(OURS, 'lat', 'p99_us'), value: added('p99_us')},
    {digits: 0, label: 'new connections/s', spreadOf: all(OURS, 'connrate', 'rate'),
      target: {op: '>=', factor: 2.5, ref: 'haproxy'}, value: (p) => med(p, 'connrate', 'rate')},
    {digits: 0, label: 'proxy CPU µs per new connection', value: (p) => med(p, 'connrate', 'proxy_cpu_us_per_conn')},
    {digits: 0, label: 'connection errors (sum over reps)', noRatio: true,
      value: (p) => all(p, 'connrate', 'errors').reduce((a, b) => a + (b || 0), 0)},
    {label: 'RSS KiB per idle connection (all path processes)', spreadOf: heldRss(OURS),
      target: {limit: 30, op: '<=', unit: 'KiB'}, value: (p) => median(heldRss(p))},
    {digits: 0, label: 'idle connections held', noRatio: true, value: (p) => med(p, 'mem', 'conns')},
    {label: 'path base RSS after warm-up, MiB (all processes)', value: (p) => med(p, 'mem', 'base_rss_kib') / 1024},
    // Read twice (bench/agent-rss.sh): a few seconds after the warm-up, and once the agent has been idle
    // long enough to trim itself (anonymous + file-backed; the split is in agent-rss.jsonl).
    ...agentNames.flatMap((name) => [
      {
        label: `agent ${name} RSS ${secs('idle_secs')} s after warm-up (before its idle trim), MB`, ours: agentMb('rss_kib_by', name),
        spreadOf: agentRss.map((r) => r.rss_kib_by[name]), value: () => Number.NaN,
      },
      {
        label: `agent ${name} idle RSS ${secs('trimmed_secs')} s after warm-up (idle trim done), MB`, ours: agentMb('trimmed_rss_kib_by', name),
        spreadOf: agentRss.map((r) => r.trimmed_rss_kib_by?.[name]), target: {limit: 60, op: '<=', unit: 'MB'}, value: () => Number.NaN,
      },
    ]),
  ]
}

function verdict(row, ours, refValue) {
  const {target} = row
  if (!target) return ['', '']
  const bound = target.limit ?? target.factor * refValue
  const text = target.limit === undefined
    ? `${target.op === '>=' ? '≥' : '≤'} ${target.factor}× ${target.ref}`
    : `${target.op === '>=' ? '≥' : '≤'} ${target.limit} ${target.unit}`
  if (!Number.isFinite(ours) || !Number.isFinite(bound)) return [text, 'n/a']
  const met = target.op === '>=' ? ours >= bound : ours <= bound
  return [text, met ? 'met' : '**MISSED**']
}

/** Median over reps of OURS / REF measured in the same rep: the load drifts between reps, so like goes with like. */
function pairedRatio(raw, ours, ref, metric, field) {
  const byRep = (p) => new Map(((raw.get(p) || new Map()).get(metric) || []).map((d) => [d.rep, d[field]]))
  const refs = byRep(ref)
  return median([...byRep(ours)].filter(([rep]) => refs.has(rep)).map(([rep, value]) => value / refs.get(rep)))
}

/**
 * Issue 15's paths, against their own references in the same run: the tunnel through a hub against the
 * direct tunnel (goal ≥ 0.7× its throughput), ztctl's SOCKS5 proxy against microsocks and dante (goal
 * ≥ 1.0× dante's throughput; ours carries mutual TLS between two agents, theirs is one plaintext hop).
 */
function hubAndProxyTable(raw) {
  const med = (p, metric, field) => median(((raw.get(p) || new Map()).get(metric) || []).map((d) => d[field]))
  const pairs = [
    {goal: 0.7, ours: 'ztctl-hub', ref: OURS, what: 'tunnel through a hub vs the direct tunnel'},
    {goal: 1, ours: 'ztctl-socks', ref: 'dante', what: 'SOCKS5 through the proxy vs dante-server'},
    {ours: 'ztctl-socks', ref: 'microsocks', what: 'SOCKS5 through the proxy vs microsocks'},
  ].filter((pair) => raw.has(pair.ours) || raw.has(pair.ref))
  if (pairs.length === 0) return []
  const figures = [
    ['1-stream Gbit/s', 'tput_p1', 'gbps', true],
    ['4-stream Gbit/s', 'tput_p4', 'gbps', true],
    ['new conns/s', 'connrate', 'rate', false],
    ['p50 µs', 'lat', 'p50_us', false],
    ['proxy CPU s/GiB', 'tput_p1', 'proxy_cpu_s_per_gib', true],
  ]
  const lines = ['', '### Hubs and the SOCKS5 proxy (issue 15), same run', '',
    `| comparison | ${figures.map(([label]) => label).join(' | ')} | 1-stream, per rep | goal (1-stream, per rep) | verdict |`, `|---|${figures.map(() => '---|').join('')}---|---|---|`]
  for (const pair of pairs) {
    const cells = figures.map(([, metric, field, digitsOne]) => {
      const [ours, ref] = [med(pair.ours, metric, field), med(pair.ref, metric, field)]
      return `${fmt(ours, digitsOne ? 2 : 0)} / ${fmt(ref, digitsOne ? 2 : 0)} = ${fmtRatio(ours / ref)}`
    })
    const ratio = pairedRatio(raw, pair.ours, pair.ref, 'tput_p1', 'gbps')
    const verdictText = pair.goal === undefined ? ['', ''] : [`≥ ${pair.goal}×`, Number.isFinite(ratio) ? (ratio >= pair.goal ? 'met' : '**MISSED**') : 'n/a']
    lines.push(`| ${pair.what} (${pair.ours} / ${pair.ref}) | ${cells.join(' | ')} | ${fmtRatio(ratio)} | ${verdictText[0]} | ${verdictText[1]} |`)
  }

  return lines
}

/**
 * The ambient path (bench/ambient/run.ts): pod → node agent → HBONE → node agent → pod, beside the same
 * two namespaces with no proxy (direct), the peers' TLS pairs on the nodes and our tunnel between them.
 */
function ambientRows(raw, ours) {
  const med = (p, metric, field) => median(((raw.get(p) || new Map()).get(metric) || []).map((d) => d[field]))
  const all = (p, metric, field) => ((raw.get(p) || new Map()).get(metric) || []).map((d) => d[field])
  const added = (field) => (p) => med(p, 'lat', field) - med('direct', 'lat', field)
  const tput = (p) => med(p, 'tput_p1', 'gbps')
  return [
    {digits: 2, label: '1-stream throughput, Gbit/s', spreadOf: all(ours, 'tput_p1', 'gbps'), target: {op: '>=', factor: 1, ref: 'haproxy'}, value: tput},
    {digits: 2, label: '1-stream throughput, Gbit/s (vs our tunnel)', spreadOf: all(ours, 'tput_p1', 'gbps'), target: {op: '>=', factor: 0.9, ref: 'ztctl'}, value: tput},
    {digits: 2, label: 'proxy CPU s/GiB (1 stream, both node proxies)', value: (p) => med(p, 'tput_p1', 'proxy_cpu_s_per_gib')},
    {label: 'round trip p50, µs added over direct', spreadOf: all(ours, 'lat', 'p50_us'), target: {op: '<=', factor: 1, ref: 'haproxy'}, value: added('p50_us')},
    {label: 'round trip p99, µs added over direct', spreadOf: all(ours, 'lat', 'p99_us'), value: added('p99_us')},
    {digits: 0, label: 'new connections/s', spreadOf: all(ours, 'connrate', 'rate'), target: {op: '>=', factor: 2.5, ref: 'haproxy'}, value: (p) => med(p, 'connrate', 'rate')},
    {digits: 0, label: 'proxy CPU µs per new connection', value: (p) => med(p, 'connrate', 'proxy_cpu_us_per_conn')},
    {digits: 0, label: 'connection errors (sum over reps)', noRatio: true, value: (p) => all(p, 'connrate', 'errors').reduce((a, b) => a + (b || 0), 0)},
  ]
}

/** OUT_DIR's rows (ROWS(raw, ours)) for OURS beside every PEERS path the run has, each target met or missed. */
function ratioTable(outDir, {ours = OURS, peers: candidates = PEERS, rows = (raw) => metricRows(raw, readJsonLines(path.join(outDir, 'agent-rss.jsonl'))), title = `${OURS} vs peers`} = {}) {
  const raw = loadRaw(outDir)
  const peers = candidates.filter((p) => raw.has(p))
  const reps = median([...raw.values()].map((m) => (m.get('lat') || []).length))
  const notes = existsSync(path.join(outDir, 'path-notes.txt')) ? readFileSync(path.join(outDir, 'path-notes.txt'), 'utf8') : ''
  const lines = [`## ${title} (one run, median of ${fmt(reps, 0)} rep(s); ${outDir})`, '']
  if (notes.split('\n').some((l) => l.startsWith(`${ours}:`) && l.includes('STAND-IN'))) {
    lines.push('> **STAND-IN run**: the ztctl path ran the shared prototypes, not ztctl. These figures say nothing about ztctl.', '')
  }

  if (!raw.has(ours)) lines.push(`> no measurements for path \`${ours}\` in this run (did it start? see work/${ours}*.log)`, '')
  lines.push(
    `| metric | ${ours} | ${peers.join(' | ')} | ${peers.map((p) => `${ours} / ${p}`).join(' | ')} | ${ours} spread | target | verdict |`,
    `|---|---|${peers.map(() => '---|').join('')}${peers.map(() => '---|').join('')}---|---|---|`,
  )
  for (const row of rows(raw, ours)) {
    const digits = row.digits ?? 1
    const value = row.ours ?? row.value(ours)
    const refs = peers.map((p) => row.value(p))
    const refOfTarget = row.target?.ref ? row.value(row.target.ref) : Number.NaN
    const [target, result] = verdict(row, value, refOfTarget)
    lines.push(`| ${row.label} | ${fmt(value, digits)} | ${refs.map((v) => fmt(v, digits)).join(' | ')} | ` +
      `${refs.map((v) => (row.noRatio ? '' : fmtRatio(value / v))).join(' | ')} | ${fmtPct(spread(row.spreadOf ?? []))} | ${target} | ${result} |`)
  }

  lines.push(...hubAndProxyTable(raw))
  const coldstartFile = path.join(outDir, 'coldstart.json')
  if (existsSync(coldstartFile)) lines.push('', coldstartTable(JSON.parse(readFileSync(coldstartFile, 'utf8'))))
  lines.push('', 'Spread = (max − min) / median over reps. Ratios are ours / peer; for round trips the added µs are compared.')
  return lines.join('\n')
}

/**
 * bench/loaded-rtt.sh: the added round trip of every path quiet (`lat`) and with the CPU hog (`lat_loaded`),
 * over direct measured the same way in the same rep; ours against haproxy in both states (goal ≤ 1.0×).
 */
function loadedTable(outDir) {
  const raw = loadRaw(outDir)
  const med = (p, metric, field) => median(((raw.get(p) || new Map()).get(metric) || []).map((d) => d[field]))
  const all = (p, metric, field) => ((raw.get(p) || new Map()).get(metric) || []).map((d) => d[field])
  const added = (p, metric, field) => med(p, metric, field) - med('direct', metric, field)
  const paths = [...raw.keys()].filter((p) => p !== 'direct')
  const reps = median([...raw.values()].map((m) => (m.get('lat') || []).length))
  const lines = [`## Added round trip, quiet and under a CPU hog (one run, median of ${fmt(reps, 0)} rep(s); ${outDir})`, '',
    '| path | p50 quiet µs | p50 loaded µs | loaded / quiet | p99 quiet µs | p99 loaded µs | p50 quiet spread | p50 loaded spread | proxy CPU µs / round trip (quiet, loaded) | context switches / round trip (quiet, loaded) |',
    '|---|---|---|---|---|---|---|---|---|---|']
  for (const p of ['direct', ...paths].filter((name) => raw.has(name))) {
    const [quiet, loaded] = p === 'direct' ? [med(p, 'lat', 'p50_us'), med(p, 'lat_loaded', 'p50_us')] : [added(p, 'lat', 'p50_us'), added(p, 'lat_loaded', 'p50_us')]
    const [quiet99, loaded99] = p === 'direct' ? [med(p, 'lat', 'p99_us'), med(p, 'lat_loaded', 'p99_us')] : [added(p, 'lat', 'p99_us'), added(p, 'lat_loaded', 'p99_us')]
    lines.push(`| ${p}${p === 'direct' ? ' (raw, not added)' : ''} | ${fmt(quiet)} | ${fmt(loaded)} | ${fmtRatio(loaded / quiet)} | ${fmt(quiet99)} | ${fmt(loaded99)} | ` +
      `${fmtPct(spread(all(p, 'lat', 'p50_us')))} | ${fmtPct(spread(all(p, 'lat_loaded', 'p50_us')))} | ` +
      `${fmt(med(p, 'lat', 'proxy_cpu_us_per_rt'))}, ${fmt(med(p, 'lat_loaded', 'proxy_cpu_us_per_rt'))} | ${fmt(med(p, 'lat', 'ctxsw_per_rt'), 2)}, ${fmt(med(p, 'lat_loaded', 'ctxsw_per_rt'), 2)} |`)
  }

  if (raw.has(OURS) && raw.has('haproxy')) {
    lines.push('', `| ${OURS} / haproxy, added p50 | ratio | target | verdict |`, '|---|---|---|---|')
    for (const [state, metric] of [['quiet', 'lat'], ['loaded', 'lat_loaded']]) {
      const ratio = added(OURS, metric, 'p50_us') / added('haproxy', metric, 'p50_us')
      lines.push(`| ${state} | ${fmtRatio(ratio)} | ≤ 1.0× | ${Number.isFinite(ratio) ? (ratio <= 1 ? 'met' : '**MISSED**') : 'n/a'} |`)
    }
  }

  const load = existsSync(path.join(outDir, 'load.txt')) ? readFileSync(path.join(outDir, 'load.txt'), 'utf8').trim().split('\n') : []
  if (load.length > 0) lines.push('', 'Load averages at each measurement (uptime):', '', ...load.map((line) => `    ${line}`))
  return lines.join('\n')
}

const [command, ...args] = process.argv.slice(2)
switch (command) {
  case 'table': {
    console.log(ratioTable(args[0]))
    break
  }

  case 'ambient': {
    console.log(ratioTable(args[0], {ours: 'ztctl-ambient', peers: ['direct', 'stunnel', 'haproxy', 'ztctl'], rows: ambientRows, title: 'ambient path (pod → pod through both node agents) vs peers on the same namespaces'}))
    break
  }

  case 'loaded': {
    console.log(loadedTable(args[0]))
    break
  }

  case 'coldstart': {
    console.log(JSON.stringify(coldstartResult(args[0], args.slice(1)), null, 2))
    break
  }

  case 'coldstart-table': {
    console.log(coldstartTable(JSON.parse(readFileSync(args[0], 'utf8'))))
    break
  }

  default: {
    console.error('usage: node bench/ratios.js table OUT_DIR | ambient OUT_DIR | loaded OUT_DIR | coldstart TOOL TIMES.json... | coldstart-table coldstart.json')
    process.exitCode = 2
  }
}

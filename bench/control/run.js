// run.js - control-plane fan-out (`npm run bench:control`): a real controller process, W workloads in its
// store, N simulated agents (sim-agent.js: each its own identity and TLS session) on the real config
// stream. Per (W, N):
//   subscribe   all N connect without a version: time until the last one acked its snapshot, bytes per
//               snapshot, the controller's CPU and peak RSS meanwhile;
//   change      CHANGES times, one new workload PUT by a node identity (/v1/workloads/UID): time from the
//               request to the last agent's ack (p50/p99 over the changes) and until the controller has
//               recorded every ack (what `--wait` polls), bytes per delta, controller CPU per change;
//   restart     SIGTERM, start again on the same port: time until every agent has resumed its stream
//               (from its last version), then CHANGES/2 more changes.
// W grows in place (workloads are added to the store while the controller is stopped), N restarts from
// zero agents in every cell.
//
//   npm run bench:control                                   # W = 1k 10k 100k, N = 10 100 1000 (~15 min)
//   CONTROL_W="1000" CONTROL_N="10 100" npm run bench:control   # a quick look
//
// Knobs (env): CONTROL_W, CONTROL_N, CHANGES (20), OUT (bench/results/control-<stamp>), CONTROL_LOG_LEVEL
// (the controller's, info), CONTROL_NODE_ARGS (the controller's node options, e.g. --cpu-prof). Writes OUT/control.jsonl (one line per cell), OUT/control.md (the table, also
// printed) and OUT/control.png (bench/control/plot.js).
import {randomUUID} from 'node:crypto'
import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'

import {ControllerClient} from '../../dist/lib/client/controller-client.js'
import {openSqliteStore} from '../../dist/lib/controller/store/sqlite.js'
import {readIdentityFile} from '../../dist/lib/identity/file.js'
import {createKeyAndCsr} from '../../dist/lib/pki/pki.js'
import {ControllerProcess} from './controller-proc.js'
import {SimAgent} from './sim-agent.js'
import {renderTable} from './table.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const list = (text) => text.trim().split(/\s+/).map(Number).filter((value) => Number.isSafeInteger(value) && value > 0)
const W_LIST = list(process.env.CONTROL_W ?? '1000 10000 100000').sort((a, b) => a - b)
const N_LIST = list(process.env.CONTROL_N ?? '10 100 1000').sort((a, b) => a - b)
const CHANGES = Math.max(2, Number(process.env.CHANGES ?? 20))
const OUT = path.resolve(process.env.OUT ?? path.join(ROOT, 'bench/results', `control-${new Date().toISOString().replaceAll(/[-:]/g, '').slice(0, 15)}`))
const SUBSCRIBE_TIMEOUT_MS = 600_000
const ACK_TIMEOUT_MS = 120_000
const NODE = 'bench-node'
/** the node publishes every bench workload: any namespace/service account, IPs in 10/8 */
const NODE_SCOPE = {podCidrs: ['10.0.0.0/8'], serves: ['*/*']}

const log = (message) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`)
const quantile = (values, q) => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
}

const median = (values) => quantile(values, 0.5)

async function withTimeout(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** The admin's and the node's API clients; new sessions after a controller restart. */
class Clients {
  constructor(adminIdentity, nodeIdentity) {
    this.adminIdentity = adminIdentity
    this.nodeIdentity = nodeIdentity
  }

  reconnect() {
    this.close()
    this.admin = ControllerClient.fromIdentity(this.adminIdentity, 30_000)
    this.node = this.nodeIdentity && ControllerClient.fromIdentity(this.nodeIdentity, 30_000)
  }

  close() {
    this.admin?.close()
    this.node?.close()
  }
}

/** Create and enroll NAME through the API (admin), in memory: the identity file's content. */
async function enrollIdentity(admin, adminIdentity, name, roles, scope) {
  const {jwt} = await admin.request('POST', '/v1/identities', {expiresInSeconds: 3600, name, roles, ...(scope ? {scope} : {})})
  const {csrPem, keyPem} = await createKeyAndCsr(name)
  const anonymous = new ControllerClient({ca: adminIdentity.ca, url: adminIdentity.controller})
  try {
    const enrolled = await anonymous.request('POST', '/v1/enroll', {csr: csrPem, token: jwt})
    return {ca: enrolled.ca, cert: enrolled.cert, controller: enrolled.controller, key: keyPem, name, spiffe: enrolled.spiffe, version: 1}
  } finally {
    anonymous.close()
  }
}

async function enrollAll(adminIdentity, names, roles, scope) {
  const admin = ControllerClient.fromIdentity(adminIdentity, 30_000)
  const identities = []
  try {
    for (let i = 0; i < names.length; i += 16) {
      identities.push(...(await Promise.all(names.slice(i, i + 16).map((name) => enrollIdentity(admin, adminIdentity, name, roles, scope)))))
    }
  } finally {
    admin.close()
  }

  return identities
}

/** A workload record shaped like a Kubernetes pod's (uid, generated pod name, namespace, service account). */
function workload(index) {
  const octets = [10, (index >> 16) & 255, (index >> 8) & 255, index & 255]
  const uid = randomUUID()
  return {
    hbone: `172.16.${(index >> 8) & 3}.${index & 255}:15008`, ips: [octets.join('.')], name: `app-${index % 500}-7d9f8b6c5-${uid.slice(0, 5)}`,
    namespace: `ns-${index % 50}`, node: `node-${index % 1000}`, serviceAccount: `sa-${index % 20}`, uid,
  }
}

/** Grow the store to W workloads while the controller is stopped (relaxed durability: a bulk load). */
async function fillWorkloads(dataDir, from, to) {
  const store = await openSqliteStore(dataDir, {synchronous: 'OFF'})
  try {
    for (let index = from; index < to; index++) {
      const record = workload(index)
      await store.putResource('workload', record.uid, record)
    }
  } finally {
    await store.close()
  }
}

async function allAcked(agents, version, what) {
  return withTimeout(Promise.all(agents.map((agent) => agent.acked(version))), ACK_TIMEOUT_MS, what)
}

/** Poll GET /v1/agents (as `--wait` does, but every 20 ms) until every agent's recorded ack reaches VERSION. */
async function recorded(admin, names, version) {
  const wanted = new Set(names)
  const deadline = Date.now() + ACK_TIMEOUT_MS
  while (Date.now() < deadline) {
    const {agents} = await admin.request('GET', '/v1/agents')
    const done = agents.filter((agent) => wanted.has(agent.name) && (agent.ackedVersion ?? -1) >= version).length
    if (done === wanted.size) return performance.now()
    await sleep(20)
  }

  throw new Error(`acks of version ${version} not recorded within ${ACK_TIMEOUT_MS} ms`)
}

/** COUNT changes, one at a time: each a new workload published by the node; per change the fan-out times. */
async function changes(ctl, {admin, node}, agents, count, label) {
  const names = agents.map((agent) => agent.identity.name)
  const before = await ctl.stats()
  const benchBefore = process.cpuUsage()
  const rows = []
  for (let i = 0; i < count; i++) {
    const record = workload(1_000_000 + Math.floor(Math.random() * 1_000_000))
    const started = performance.now()
    const {version} = await node.request('PUT', `/v1/workloads/${record.uid}`, {
      hbone: record.hbone, ips: record.ips, name: record.name, namespace: record.namespace, serviceAccount: record.serviceAccount,
    })
    const committed = performance.now()
    const ackTimes = await allAcked(agents, version, `${label}: change ${i + 1} acked by ${agents.length} agents`)
    const recordedAt = await recorded(admin, names, version)
    rows.push({
      ackMedianMs: median(ackTimes) - started, commitMs: committed - started, deltaBytes: median(agents.map((agent) => agent.bytes.delta.at(-1))),
      lastAckMs: Math.max(...ackTimes) - started, recordedMs: recordedAt - started,
    })
    await sleep(50)
  }

  const after = await ctl.stats()
  // The simulated agents' own cost (this process: TLS, HTTP/2, parsing, acks; the /v1/agents polls and 50 ms pauses too)
  const bench = process.cpuUsage(benchBefore)
  return {
    ackMedianMs: median(rows.map((row) => row.ackMedianMs)), benchCpuMsPerChange: (bench.user + bench.system) / 1000 / count, commitMs: median(rows.map((row) => row.commitMs)), count,
    cpuMsPerChange: ((after.cpuSeconds - before.cpuSeconds) * 1000) / count, deltaBytes: median(rows.map((row) => row.deltaBytes)),
    lastAckP50Ms: quantile(rows.map((row) => row.lastAckMs), 0.5), lastAckP99Ms: quantile(rows.map((row) => row.lastAckMs), 0.99),
    lastAckSpread: spread(rows.map((row) => row.lastAckMs)), recordedP50Ms: quantile(rows.map((row) => row.recordedMs), 0.5),
    recordedP99Ms: quantile(rows.map((row) => row.recordedMs), 0.99), rssKiB: after.rssKiB,
  }
}

/** (max − min) / median */
function spread(values) {
  const finite = values.filter(Number.isFinite)
  return finite.length < 2 ? Number.NaN : (Math.max(...finite) - Math.min(...finite)) / median(finite)
}

async function cell(ctl, clients, identities, w, n) {
  const label = `W=${w} N=${n}`
  const agents = identities.slice(0, n).map((identity, index) => new SimAgent(identity, `127.0.0.${1 + (index >> 8)}:${15_008 + (index & 255)}`))
  const {version: current} = await clients.admin.request('GET', '/v1/resources/policy')
  await ctl.resetPeak()
  const before = await ctl.stats()
  const started = performance.now()
  for (const agent of agents) agent.start()
  const snapshotAcks = await withTimeout(Promise.all(agents.map((agent) => agent.acked(current))), SUBSCRIBE_TIMEOUT_MS, `${label}: every agent acks a snapshot`)
  const subscribed = await ctl.stats()
  const subscribe = {
    bytesPerSnapshot: median(agents.map((agent) => agent.bytes.snapshot[0])), cpuSeconds: subscribed.cpuSeconds - before.cpuSeconds,
    lastAckMs: Math.max(...snapshotAcks) - started, peakRssKiB: subscribed.hwmKiB,
  }
  log(`${label}: subscribed in ${subscribe.lastAckMs.toFixed(0)} ms, ${(subscribe.bytesPerSnapshot / 1e6).toFixed(2)} MB per snapshot`)
  await sleep(1000)
  const steadyRssKiB = (await ctl.stats()).rssKiB
  await ctl.resetPeak()
  const change = await changes(ctl, clients, agents, CHANGES, label)
  change.peakRssKiB = (await ctl.stats()).hwmKiB
  log(`${label}: change → last ack p50 ${change.lastAckP50Ms.toFixed(0)} ms, p99 ${change.lastAckP99Ms.toFixed(0)} ms`)

  const connects = agents.map((agent) => agent.connects)
  const restartStarted = performance.now()
  await ctl.restart()
  const bannerAt = performance.now()
  await ctl.resetPeak()
  const resumeBefore = await ctl.stats()
  await withTimeout((async () => {
    while (agents.some((agent, index) => agent.connects === connects[index] || !agent.connected)) await sleep(20)
  })(), ACK_TIMEOUT_MS, `${label}: every agent resumes after the restart`)
  const resumed = performance.now()
  const resumeAfter = await ctl.stats()
  const restart = {
    cpuSeconds: resumeAfter.cpuSeconds - resumeBefore.cpuSeconds, peakRssKiB: resumeAfter.hwmKiB, resumeMs: resumed - bannerAt, startMs: bannerAt - restartStarted,
  }
  clients.reconnect()
  const afterRestart = await changes(ctl, clients, agents, Math.max(2, CHANGES >> 1), `${label} after restart`)
  log(`${label}: after restart: resumed ${restart.resumeMs.toFixed(0)} ms after the banner; change → last ack p50 ${afterRestart.lastAckP50Ms.toFixed(0)} ms`)
  const errors = agents.flatMap((agent) => agent.errors).filter((error) => !/ECONNRESET|ECONNREFUSED|GOAWAY|closed|socket hang up|unreachable|refused/i.test(error))
  for (const agent of agents) agent.close()
  await sleep(500)
  return {afterRestart, change, errors: errors.slice(0, 5), n, restart, steadyRssKiB, subscribe, w}
}

async function main() {
  await mkdir(OUT, {recursive: true})
  const home = await mkdtemp(path.join(tmpdir(), 'ztctl-bench-control-'))
  const dataDir = path.join(home, 'controller')
  const ctl = new ControllerProcess({dataDir, home, logFile: path.join(OUT, 'controller.log'), logLevel: process.env.CONTROL_LOG_LEVEL ?? 'info'})
  const results = []
  try {
    log(`results -> ${OUT}; W = ${W_LIST.join(', ')}; N = ${N_LIST.join(', ')}; ${CHANGES} changes per cell`)
    await ctl.start()
    const adminIdentity = await readIdentityFile(ctl.adminIdentityPath)
    const maxN = Math.max(...N_LIST)
    log(`enrolling ${maxN} agent identities and the node identity`)
    const [nodeIdentity] = await enrollAll(adminIdentity, [NODE], ['node'], NODE_SCOPE)
    const identities = await enrollAll(adminIdentity, Array.from({length: maxN}, (_, i) => `agent-${String(i + 1).padStart(4, '0')}`), ['agent'])
    const clients = new Clients(adminIdentity, nodeIdentity)
    let workloads = 0
    for (const w of W_LIST) {
      await ctl.stop()
      log(`store: ${workloads} → ${w} workloads`)
      await fillWorkloads(dataDir, workloads, w)
      workloads = w
      await ctl.start()
      clients.reconnect()
      for (const n of N_LIST) {
        results.push(await cell(ctl, clients, identities, w, n))
        await writeFile(path.join(OUT, 'control.jsonl'), results.map((row) => JSON.stringify(row)).join('\n') + '\n')
      }

      clients.close()
    }
  } finally {
    await ctl.stop()
    await rm(home, {force: true, recursive: true})
  }

  const table = renderTable(results, {changes: CHANGES, out: OUT})
  await writeFile(path.join(OUT, 'control.md'), table + '\n')
  process.stdout.write(table + '\n')
  const {renderPlot} = await import('./plot.js')
  await renderPlot(results, path.join(OUT, 'control.png')).then(
    (file) => log(`plot: ${file}`),
    (error) => log(`no plot (${error.message})`),
  )
}

await main()

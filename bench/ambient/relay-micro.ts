// relay-micro.ts - the native engine's plain ↔ plain relay alone on loopback (docs/hbone.md "Plain paths"):
// throughput and CPU per GiB (iperf3), round trip p50 (lat), connections/s and CPU per connection (connrate)
// through one relay hop. The relay runs in this process (its CPU is this process's), the peers are the
// harness's C tools and iperf3 as child processes. It chose recv/send over splice(2) through a pipe pair per
// direction (commit abcd0bd has both: ZTCTL_HBONE_RELAY=splice picked the latter at load).
//
//   node --import tsx bench/ambient/relay-micro.ts
//
// Knobs (env): BENCH_BIN (echo, lat, connrate; built by bench/ambient/run.ts), TPUT_SECS, LAT_N, CONN_SECS.
// Prints one JSON line per run. Not a test.
import {type ChildProcess, execFile, spawn} from 'node:child_process'
import path from 'node:path'
import {promisify} from 'node:util'

import {HboneEngine} from '../../src/lib/proxy/hbone/hbone-engine.js'

const exec = promisify(execFile)
const BIN = process.env.BENCH_BIN ?? path.join(process.env.TMPDIR ?? '/tmp', 'peer-bench-bin')
const int = (name: string, fallback: number, max: number): number => Math.min(max, Math.max(1, Number(process.env[name] ?? fallback) || fallback))
const TPUT_SECS = int('TPUT_SECS', 5, 60)
const LAT_N = int('LAT_N', 20_000, 200_000)
const CONN_SECS = int('CONN_SECS', 3, 60)
const ECHO_PORT = 17_400
const IPERF_PORT = 17_401

const engine = HboneEngine.get()

/** A plain listener of the engine relaying each connection to 127.0.0.1:TARGET; its port. */
function relayTo(target: number): number {
  const {port} = engine.listenPlain('127.0.0.1', 0, (tunnelId) => {
    const id = engine.relay(tunnelId, {host: '127.0.0.1', port: target}, 5000, {
      closed() {},
      dialResult(code) {
        if (code !== '' && id !== undefined) engine.forgetTunnel(id)
      },
    })
  })
  return port
}

const cpuSeconds = (): number => {
  const {system, user} = process.cpuUsage()
  return (system + user) / 1e6
}

/** Run TOOL to the end (the loop stays free: the relay runs meanwhile) and parse its JSON. */
async function tool(file: string, args: string[]): Promise<Record<string, unknown>> {
  const {stdout} = await exec(file, args, {maxBuffer: 16 * 1024 * 1024, timeout: 120_000})
  return JSON.parse(stdout) as Record<string, unknown>
}

async function main(): Promise<void> {
  const peers: ChildProcess[] = [spawn(path.join(BIN, 'echo'), [String(ECHO_PORT), '127.0.0.1'], {stdio: 'ignore'}), spawn('iperf3', ['-s', '-p', String(IPERF_PORT), '-B', '127.0.0.1'], {stdio: 'ignore'})]
  try {
    await new Promise((resolve) => setTimeout(resolve, 500))
    const echo = relayTo(ECHO_PORT)
    const iperf = relayTo(IPERF_PORT)
    await tool('iperf3', ['-c', '127.0.0.1', '-p', String(iperf), '-t', '1', '-J']) // warm-up
    let before = cpuSeconds()
    const report = await tool('iperf3', ['-c', '127.0.0.1', '-p', String(iperf), '-t', String(TPUT_SECS), '-J']) as {end: {sum_received: {bits_per_second: number; bytes: number}}}
    const tputCpu = cpuSeconds() - before
    const {bits_per_second: bps, bytes} = report.end.sum_received
    const lat = await tool(path.join(BIN, 'lat'), ['127.0.0.1', String(echo), String(LAT_N), '64', '1000'])
    before = cpuSeconds()
    const conn = await tool(path.join(BIN, 'connrate'), ['127.0.0.1', String(echo), '4', String(CONN_SECS), '64']) as {conns: number}
    const connCpu = cpuSeconds() - before
    process.stdout.write(JSON.stringify({
      conn_per_s: conn.conns / CONN_SECS, cpu_s_per_gib: tputCpu / (bytes / 2 ** 30), cpu_us_per_conn: (connCpu * 1e6) / conn.conns,
      gbps: bps / 1e9, lat_p50_us: lat.p50_us,
    }) + '\n')
  } finally {
    for (const peer of peers) peer.kill()
  }
}

await main()
process.exit(0) // the listeners hold the loop

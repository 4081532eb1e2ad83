// run.ts - the ambient path beside the peers (issue 14 §2), one run so the ratios compare like with like.
// Two "nodes" as network namespaces joined by a veth, one "pod" namespace on each (test/helpers/netns.ts),
// the echo and iperf3 targets in pod 2, every client in pod 1. Paths, each measured in every rep:
//   direct         pod 1 → pod 2 over the veth, no proxy
//   stunnel        pod 1 → stunnel client (node 1) → TLS 1.3 mTLS → stunnel server (node 2) → pod 2
//   haproxy        the same with the haproxy pair
//   ztctl          our tunnel between the nodes: inbound listener (node 1) → HBONE → outbound (node 2) → pod 2
//   ztctl-ambient  in-pod redirection: pod 1 dials pod 2's IP; node 1's agent captures it inside pod 1
//                  (15001), HBONE to pod 2's 15008 served by node 2's agent, delivered inside pod 2
//   haproxy-plain  pod 1 → one haproxy on node 2 (tcp mode, no TLS) → pod 2: the plaintext peer of the next
//   ztctl-inbound-plain  only pod 2 redirected: pod 1 (outside the mesh) dials pod 2's IP in plaintext, pod 2's
//                  rules send it to 15006, node 2's agent joins it to the app from inside pod 2 (native: a
//                  plain ↔ plain relay in the addon; ZTCTL_TEST_DATA_PATH=node: node:net)
//   direct-local   pod 3 (node 2's second pod) → pod 2 across node 2's bridge, no proxy
//   ztctl-local    the local fast path: pod 3 and pod 2 redirected on node 2; pod 3's connection is captured
//                  (15001), authorized and joined to pod 2 by node 2's agent (a relay on native), no TLS
//   direct-rules, ztctl-rules  direct and our tunnel with both pods redirected (`redirect add`: rules, routes,
//                  conntrack) but every TCP connection exempted first in nat, so nothing is captured: what
//                  the in-pod rules cost a path without the agents in it.
// The last six are not in the default AMBIENT_PATHS.
// Every proxy is its own process in its node's namespace; the ambient agents are `agent run --inpod-socket`
// enrolled with a controller (in node 1's namespace, idle while measuring). Redirection is added before
// the ambient path and removed after it, so the other paths see plain pods.
//
//   node --import tsx bench/ambient/run.ts OUT_DIR      # root; bench/run.sh runs it after the harness
//
// Knobs (env, as the harness): REPS TPUT_SECS LAT_N LAT_SIZE CONN_SECS CONN_THREADS AMBIENT_PATHS
// BENCH_BIN (the harness's compiled tools) BENCH_CERTS; AMBIENT_METRICS (default "tput lat connrate": a
// subset measures only those); AMBIENT_LOG_LEVEL (the node agents' --log-level, default warn as the
// tunnel's agents: info adds two access-log lines per connection, which the peers do not write);
// AMBIENT_PROBE: a shell command run beside each `lat` measurement (bounded by it, SIGINT after it) with
// PROBE_PIDS (the path's processes and the echo server, comma-separated) and PROBE_OUT (a file prefix in
// work/), e.g. 'perf stat -e raw_syscalls:sys_enter -p $PROBE_PIDS -o $PROBE_OUT.stat'; AMBIENT_POD_IPTABLES:
// what-if rules, `;`-separated iptables argument lists (each with -A or -I) added in every pod the
// ambient paths redirect, after `redirect add`, deleted before `redirect remove` (e.g. raw-table notrack). Writes OUT_DIR/raw.jsonl (the harness's row format)
// and OUT_DIR/path-notes.txt; `node bench/ratios.js ambient OUT_DIR` prints the table. Not a test.
import type {ChildProcess} from 'node:child_process'
import {execFile, spawn} from 'node:child_process'
import {appendFile, mkdir, readdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

import {RUN_JS, runCli, startTestController, type TestController} from '../../test/helpers/controller.js'
import {createTopology, type Topology, type TopoNode, type TopoPod} from '../../test/helpers/netns.js'
import {INPOD_TEST_DATA_PATH, nodeScopeFlags, startNodeAgent, stopNodeAgent, waitUntil} from '../../test/inpod/fixtures.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SHARED_BENCH = process.env.PEER_BENCH ?? path.join(ROOT, '../shared/bench')
const BIN = process.env.BENCH_BIN ?? path.join(process.env.TMPDIR ?? '/tmp', 'peer-bench-bin')
const CERTS = process.env.BENCH_CERTS ?? '/tmp/bench-certs'
const int = (name: string, fallback: number, max: number): number => Math.min(max, Math.max(1, Number(process.env[name] ?? fallback) || fallback))
const REPS = int('REPS', 3, 10)
const TPUT_SECS = int('TPUT_SECS', 10, 60)
const LAT_N = int('LAT_N', 20_000, 200_000)
const LAT_SIZE = int('LAT_SIZE', 64, 65_536)
const CONN_SECS = int('CONN_SECS', 5, 60)
const CONN_THREADS = int('CONN_THREADS', 4, 16)
const PATHS = (process.env.AMBIENT_PATHS ?? 'direct stunnel haproxy ztctl ztctl-ambient').split(/\s+/).filter(Boolean)
const METRICS = new Set((process.env.AMBIENT_METRICS ?? 'tput lat connrate').split(/\s+/).filter(Boolean))
const AGENT_LOG_LEVEL = process.env.AMBIENT_LOG_LEVEL === 'info' ? 'info' : 'warn'
const PROBE = process.env.AMBIENT_PROBE
const POD_IPTABLES = (process.env.AMBIENT_POD_IPTABLES ?? '').split(';').map((rule) => rule.trim().split(/\s+/).filter(Boolean)).filter((rule) => rule.length > 0)
const ECHO_PORT = 7000
const IPERF_PORT = 5201
const TLS13_SUITE = 'TLS_AES_128_GCM_SHA256'
const NAMESPACE = 'default'

const OUT = path.resolve(process.argv[2] ?? path.join(ROOT, 'bench/results', `ambient-${Date.now()}`))
const WORK = path.join(OUT, 'work')
const RAW = path.join(OUT, 'raw.jsonl')
const log = (message: string): void => void process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ambient: ${message}\n`)
const exec = promisify(execFile)

interface Endpoint {
  echo: string
  iperf: string
}

/** A path between pod 1 and pod 2: where pod 1's clients connect, and the processes that carry it. */
interface RunningPath {
  /** where the clients run (pod 1 unless said) */
  from?: TopoPod
  note: string
  pids: number[]
  to: Endpoint
  down(): Promise<unknown>
}

interface Bench {
  cleanups: (() => Promise<void> | void)[]
  ctx: {after(fn: () => Promise<void> | void): void}
  echoPid: number
  node1: TopoNode
  node2: TopoNode
  pod1: TopoPod
  pod2: TopoPod
  /** node 2's second pod: the local fast path's client */
  pod3: TopoPod
  topo: Topology
}

const hostPort = (host: string, port: number): string => `${host}:${port}`
const splitHostPort = (text: string): [string, string] => [text.slice(0, text.lastIndexOf(':')), text.slice(text.lastIndexOf(':') + 1)]

/** Start CMD in NETNS as a path process: output to WORK/NAME.log (drained, so it never blocks). */
function spawnIn(bench: Bench, netns: string, name: string, cmd: string, args: string[]): ChildProcess {
  const child = bench.topo.spawn(netns, cmd, args)
  const write = (chunk: Buffer): void => void appendFile(path.join(WORK, `${name}.log`), chunk).catch(() => {})
  child.stdout!.on('data', write)
  child.stderr!.on('data', write)
  return child
}

/** SIGTERM each (SIGKILL after 15 s, as for the node agents) and wait until all are gone. */
const stopChildren = (children: ChildProcess[]): Promise<unknown> => Promise.all(children.map((child) => stopNodeAgent({child, output: () => ''})))

/** Bounded wait until FROM (pod 1) gets an echo back from ENDPOINT. */
async function waitEcho(bench: Bench, endpoint: string, from = bench.pod1): Promise<void> {
  const [host, port] = splitHostPort(endpoint)
  await waitUntil(`an echo through ${endpoint}`, async () => (await bench.topo.exec(from.netns, path.join(BIN, 'lat'), [host, port, '20', '16', '0'], {timeoutMs: 5000})).code === 0, 30_000)
}

// ---------- paths ----------

function direct(bench: Bench): RunningPath {
  const {ip} = bench.pod2
  return {down: async () => {}, note: 'pod 1 → pod 2 across the node veth (no proxy)', pids: [], to: {echo: hostPort(ip, ECHO_PORT), iperf: hostPort(ip, IPERF_PORT)}}
}

/** The two ends of a TLS pair: the client end on node 1's bridge address, the server end on node 2's veth address. */
function pairAddresses(bench: Bench, base: number): {clientEcho: string; clientIperf: string; serverEcho: string; serverIperf: string} {
  const near = bench.node1.bridgeIp
  const far = bench.node2.links[0]!.ip
  return {clientEcho: hostPort(near, base + 1), clientIperf: hostPort(near, base + 11), serverEcho: hostPort(far, base + 2), serverIperf: hostPort(far, base + 12)}
}

async function stunnel(bench: Bench): Promise<RunningPath> {
  const a = pairAddresses(bench, 7200)
  const common = `foreground = yes\npid =\ndebug = 3\nsslVersionMin = TLSv1.3\nciphersuites = ${TLS13_SUITE}\nCAfile = ${CERTS}/ca.pem\nverifyChain = yes\n`
  await writeFile(path.join(WORK, 'stunnel-client.conf'), `${common}cert = ${CERTS}/client.pem\nkey = ${CERTS}/client.key\ncheckHost = localhost\nclient = yes\n` +
    `[echo]\naccept = ${a.clientEcho}\nconnect = ${a.serverEcho}\n[iperf]\naccept = ${a.clientIperf}\nconnect = ${a.serverIperf}\n`)
  await writeFile(path.join(WORK, 'stunnel-server.conf'), `${common}cert = ${CERTS}/server.pem\nkey = ${CERTS}/server.key\n` +
    `[echo]\naccept = ${a.serverEcho}\nconnect = ${hostPort(bench.pod2.ip, ECHO_PORT)}\n[iperf]\naccept = ${a.serverIperf}\nconnect = ${hostPort(bench.pod2.ip, IPERF_PORT)}\n`)
  const children = [
    spawnIn(bench, bench.node2.netns, 'stunnel-server', 'stunnel4', [path.join(WORK, 'stunnel-server.conf')]),
    spawnIn(bench, bench.node1.netns, 'stunnel-client', 'stunnel4', [path.join(WORK, 'stunnel-client.conf')]),
  ]
  return started(bench, children, 'stunnel client (node 1) → stunnel server (node 2), TLS 1.3 mTLS, one TLS connection per TCP connection', {echo: a.clientEcho, iperf: a.clientIperf})
}

async function haproxy(bench: Bench): Promise<RunningPath> {
  const a = pairAddresses(bench, 7300)
  const common = `global\n  maxconn 8000\n  ssl-default-bind-ciphersuites ${TLS13_SUITE}\n  ssl-default-server-ciphersuites ${TLS13_SUITE}\n` +
    '  ssl-default-bind-options ssl-min-ver TLSv1.3\n  ssl-default-server-options ssl-min-ver TLSv1.3\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 10m\n  timeout server 10m\n'
  const clientTls = `ssl crt ${CERTS}/client.bundle.pem ca-file ${CERTS}/ca.pem verify required verifyhost localhost sni str(localhost)`
  const serverTls = `ssl crt ${CERTS}/server.bundle.pem ca-file ${CERTS}/ca.pem verify required`
  await writeFile(path.join(WORK, 'haproxy-client.cfg'), `${common}listen echo\n  bind ${a.clientEcho}\n  server s ${a.serverEcho} ${clientTls}\n` +
    `listen iperf\n  bind ${a.clientIperf}\n  server s ${a.serverIperf} ${clientTls}\n`)
  await writeFile(path.join(WORK, 'haproxy-server.cfg'), `${common}listen echo\n  bind ${a.serverEcho} ${serverTls}\n  server t ${hostPort(bench.pod2.ip, ECHO_PORT)}\n` +
    `listen iperf\n  bind ${a.serverIperf} ${serverTls}\n  server t ${hostPort(bench.pod2.ip, IPERF_PORT)}\n`)
  const children = [
    spawnIn(bench, bench.node2.netns, 'haproxy-server', 'haproxy', ['-db', '-f', path.join(WORK, 'haproxy-server.cfg')]),
    spawnIn(bench, bench.node1.netns, 'haproxy-client', 'haproxy', ['-db', '-f', path.join(WORK, 'haproxy-client.cfg')]),
  ]
  return started(bench, children, 'haproxy client (node 1) → haproxy server (node 2), TLS 1.3 mTLS, one TLS connection per TCP connection, nbthread=nproc', {echo: a.clientEcho, iperf: a.clientIperf})
}

/** The plaintext peer of 15006: one haproxy (tcp mode, no TLS) on node 2 relaying pod 1's connections to pod 2. */
async function haproxyPlain(bench: Bench): Promise<RunningPath> {
  const far = bench.node2.links[0]!.ip
  const to = {echo: hostPort(far, 7401), iperf: hostPort(far, 7411)}
  await writeFile(path.join(WORK, 'haproxy-plain.cfg'), 'global\n  maxconn 8000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 10m\n  timeout server 10m\n' +
    `listen echo\n  bind ${to.echo}\n  server t ${hostPort(bench.pod2.ip, ECHO_PORT)}\nlisten iperf\n  bind ${to.iperf}\n  server t ${hostPort(bench.pod2.ip, IPERF_PORT)}\n`)
  const children = [spawnIn(bench, bench.node2.netns, 'haproxy-plain', 'haproxy', ['-db', '-f', path.join(WORK, 'haproxy-plain.cfg')])]
  return started(bench, children, 'pod 1 → haproxy (node 2, tcp mode, plaintext, nbthread=nproc) → pod 2: one plain relay, the peer of 15006', to)
}

/** Our tunnel between the nodes: static config (bench/fixture.js), the agents as shipped (native data path). */
async function tunnel(bench: Bench): Promise<RunningPath> {
  const a = pairAddresses(bench, 7900)
  const clientHbone = hostPort(bench.node1.bridgeIp, 7918)
  const serverHbone = hostPort(bench.node2.links[0]!.ip, 7908)
  const dir = path.join(WORK, 'ztctl')
  await exec(process.execPath, [path.join(ROOT, 'bench/fixture.js'), '--dir', dir, '--client-hbone', clientHbone, '--server-hbone', serverHbone,
    '--route', `${a.clientEcho}=tcp/echo=${hostPort(bench.pod2.ip, ECHO_PORT)}`, '--route', `${a.clientIperf}=tcp/iperf=${hostPort(bench.pod2.ip, IPERF_PORT)}`])
  const agent = (netns: string, name: string, hbone: string): ChildProcess => spawnIn(bench, netns, name, process.execPath, [RUN_JS, 'agent', 'run', '-i', path.join(dir, `${name}.json`),
    '--hbone', hbone, '--advertise', hbone, '--admin', '127.0.0.1:0', '--metrics', '127.0.0.1:0', '--readiness', '127.0.0.1:0',
    '--config', path.join(dir, 'snapshot.json'), '--drain-timeout', '1s', '--log-level', 'warn'])
  const children = [agent(bench.node2.netns, 'bench-server', serverHbone), agent(bench.node1.netns, 'bench-client', clientHbone)]
  return started(bench, children, 'ztctl inbound tunnel (node 1) → HBONE → ztctl outbound (node 2), static --config, native data path', {echo: a.clientEcho, iperf: a.clientIperf})
}

async function started(bench: Bench, children: ChildProcess[], note: string, to: Endpoint): Promise<RunningPath> {
  const running = {down: () => stopChildren(children), note, pids: children.map((child) => child.pid!), to}
  try {
    await waitEcho(bench, to.echo)
  } catch (error) {
    await running.down()
    throw error
  }

  return running
}

/** The mesh the ambient path runs in: a controller, one enrolled node agent per node (kept across reps). */
interface Ambient {
  agents: Awaited<ReturnType<typeof startNodeAgent>>[]
  ctl: TestController
  files: (node: TopoNode) => {identity: string; socket: string; stateDir: string}
}

async function ambientMesh(bench: Bench): Promise<Ambient> {
  const {node1, topo} = bench
  const ctl = await startTestController(bench.ctx, {listenHost: node1.bridgeIp, netns: node1.netns})
  const dir = path.join(WORK, 'ambient')
  await mkdir(dir, {recursive: true})
  const files = (node: TopoNode) => ({identity: path.join(dir, `node${node.index + 1}.json`), socket: path.join(dir, `n${node.index + 1}.sock`), stateDir: path.join(dir, `state${node.index + 1}`)})
  for (const node of [bench.node1, bench.node2]) {
    const name = `node${node.index + 1}`
    for (const args of [['identity', 'create', name, '-a', 'node', ...nodeScopeFlags(node, NAMESPACE), '--out', path.join(dir, `${name}.jwt`)], ['enroll', path.join(dir, `${name}.jwt`), '--out', files(node).identity]]) {
      const result = await ctl.run(args)
      if (result.code !== 0) throw new Error(`ztctl ${args.join(' ')}: ${result.stderr}`)
    }
  }

  const agents = [await startNodeAgent(topo, bench.node1, files(bench.node1), AGENT_LOG_LEVEL), await startNodeAgent(topo, bench.node2, files(bench.node2), AGENT_LOG_LEVEL)]
  bench.cleanups.push(async () => {
    for (const agent of agents) await stopNodeAgent(agent)
  })
  return {agents, ctl, files}
}

async function redirect(bench: Bench, mesh: Ambient, verb: 'add' | 'remove', pod: TopoPod): Promise<void> {
  const node = pod.node === 0 ? bench.node1 : bench.node2
  const args = verb === 'add' ? ['redirect', 'add', '--netns', pod.netnsPath, '--workload', `${NAMESPACE}/${pod.name}`, '--service-account', pod.name] : ['redirect', 'remove', '--netns', pod.netnsPath]
  const result = await runCli([...args, '--agent-socket', mesh.files(node).socket, '--state-dir', mesh.files(node).stateDir], mesh.ctl.env)
  if (result.code !== 0) throw new Error(`ztctl ${args.join(' ')}: ${result.stdout}${result.stderr}`)
}

/** In-pod redirection of PODS (pod 2 always among them), up until node 1 knows pod 2 and an echo from FROM goes through. */
async function ambient(bench: Bench, mesh: Ambient, pods: TopoPod[], note: string, pids: number[], from = bench.pod1): Promise<RunningPath> {
  const {pod2, topo} = bench
  const whatIf = async (pod: TopoPod, remove: boolean): Promise<void> => {
    for (const rule of POD_IPTABLES) {
      const args = remove ? rule.filter((arg, i) => !(rule[i - 2] === '-I' && /^\d+$/.test(arg))).map((arg) => (arg === '-A' || arg === '-I' ? '-D' : arg)) : rule
      await (remove ? topo.exec(pod.netns, 'iptables', args) : topo.execOk(pod.netns, 'iptables', args))
    }
  }

  const down = async (): Promise<void> => {
    for (const pod of pods) {
      await whatIf(pod, true)
      await redirect(bench, mesh, 'remove', pod)
    }
  }

  try {
    for (const pod of pods) {
      await redirect(bench, mesh, 'add', pod)
      await whatIf(pod, false)
    }

    await waitUntil('node 1 knows pod 2', async () => {
      const dump = await topo.exec(bench.node1.netns, 'curl', ['-s', '--max-time', '3', 'http://127.0.0.1:15000/config_dump'])
      return dump.code === 0 && dump.stdout.includes(`"${pod2.ip}"`)
    }, 30_000)
    await waitEcho(bench, hostPort(pod2.ip, ECHO_PORT), from)
  } catch (error) {
    await down()
    throw error
  }

  return {down, from, note: POD_IPTABLES.length > 0 ? `${note}; what-if rules in the pods: ${POD_IPTABLES.map((rule) => rule.join(' ')).join('; ')}` : note, pids, to: direct(bench).to}
}

/** RUNNING with both pods redirected but every TCP connection exempted (nat ACCEPT before our rules). */
async function rulesOnly(bench: Bench, mesh: Ambient, running: RunningPath): Promise<RunningPath> {
  const pods = [bench.pod1, bench.pod2]
  const exempt = (pod: TopoPod, verb: '-D' | '-I'): Promise<unknown> => Promise.all(['ZTCTL_OUTPUT', 'ZTCTL_PRERT'].map((chain) =>
    bench.topo.execOk(pod.netns, 'iptables', ['-t', 'nat', verb, chain, ...(verb === '-I' ? ['1'] : []), '-p', 'tcp', '-j', 'ACCEPT'])))
  const down = async (): Promise<void> => {
    for (const pod of pods) {
      await exempt(pod, '-D').catch(() => {})
      await redirect(bench, mesh, 'remove', pod)
    }

    await running.down()
  }

  try {
    for (const pod of pods) {
      await redirect(bench, mesh, 'add', pod)
      await exempt(pod, '-I')
    }

    await waitEcho(bench, running.to.echo)
  } catch (error) {
    await down()
    throw error
  }

  return {...running, down, note: `${running.note}; both pods redirected (rules, routes, conntrack), every TCP connection exempted first in nat (no capture)`}
}

const meshed = (bench: Bench, mesh: Ambient): Promise<RunningPath> => ambient(bench, mesh, [bench.pod1, bench.pod2],
  `pod 1 dials pod 2's IP; ztctl node agent 1 captures it in pod 1 (15001) → HBONE (mTLS h2) → pod 2's 15008 (node agent 2) → pod 2, ${INPOD_TEST_DATA_PATH} data path (ZTCTL_TEST_DATA_PATH=node: the node:http2 fallback)`,
  mesh.agents.map((agent) => agent.child.pid!))

const inboundPlain = (bench: Bench, mesh: Ambient): Promise<RunningPath> => ambient(bench, mesh, [bench.pod2],
  `pod 1 (not redirected) dials pod 2's IP in plaintext; pod 2's rules → 15006 → node agent 2 joins it to the app inside pod 2 (${INPOD_TEST_DATA_PATH === 'native' ? 'a relay in the addon' : 'node:net'}); CPU: node agent 2`,
  [mesh.agents[1]!.child.pid!])

const directLocal = (bench: Bench): RunningPath => ({...direct(bench), from: bench.pod3, note: 'pod 3 → pod 2 across node 2\'s bridge (no proxy)'})

const localFastPath = (bench: Bench, mesh: Ambient): Promise<RunningPath> => ambient(bench, mesh, [bench.pod3, bench.pod2],
  `pod 3 dials pod 2's IP, both on node 2: node agent 2 captures it in pod 3 (15001), authorizes and joins it to pod 2 (${INPOD_TEST_DATA_PATH === 'native' ? 'a relay in the addon' : 'node:net'}), no TLS; CPU: node agent 2`,
  [mesh.agents[1]!.child.pid!], bench.pod3)

// ---------- measurements (the harness's tools and row format) ----------

async function emit(pathName: string, rep: number, metric: string, data: unknown): Promise<void> {
  await appendFile(RAW, JSON.stringify({data, metric, path: pathName, rep}) + '\n')
}

async function cpuTicks(pids: number[]): Promise<number> {
  if (pids.length === 0) return 0
  const {stdout} = await exec(process.execPath, [path.join(SHARED_BENCH, 'lib/procstat.js'), ...pids.map(String)])
  return (JSON.parse(stdout) as {cpu_ticks: number}).cpu_ticks
}

/** Nanoseconds on a CPU over every thread of PIDS (schedstat: exact, where /proc's ticks are 10 ms). */
async function cpuNanos(pids: number[]): Promise<number> {
  let total = 0
  for (const pid of pids) {
    const tasks = await readdir(`/proc/${pid}/task`).catch(() => [])
    for (const task of tasks) total += Number((await readFile(`/proc/${pid}/task/${task}/schedstat`, 'utf8').catch(() => '0')).split(' ')[0]) || 0
  }

  return total
}

async function fromPod(bench: Bench, pod: TopoPod, tool: string, args: string[], timeoutMs: number): Promise<unknown> {
  const result = await bench.topo.exec(pod.netns, tool, args, {timeoutMs})
  if (result.code !== 0) throw new Error(`${path.basename(tool)} ${args.join(' ')}: exit ${result.code}: ${result.stderr.trim().slice(0, 300)}`)
  return JSON.parse(result.stdout)
}

/** RUN with AMBIENT_PROBE beside it (when set): the probe is interrupted once RUN is done, at most 30 s later gone. */
async function probed<T>(bench: Bench, name: string, rep: number, running: RunningPath, run: () => Promise<T>): Promise<T> {
  if (!PROBE) return run()
  const env = {...process.env, PROBE_OUT: path.join(WORK, `probe-${name}-${rep}`), PROBE_PIDS: [...running.pids, bench.echoPid].join(',')}
  const probe = spawn('bash', ['-c', PROBE], {detached: true, env, stdio: ['ignore', 'inherit', 'inherit']})
  const exited = new Promise((resolve) => probe.once('exit', resolve))
  await new Promise((resolve) => setTimeout(resolve, 1000)) // perf and strace attach
  try {
    return await run()
  } finally {
    process.kill(-probe.pid!, 'SIGINT')
    const timer = setTimeout(() => process.kill(-probe.pid!, 'SIGKILL'), 30_000)
    await exited
    clearTimeout(timer)
  }
}

async function measure(bench: Bench, name: string, rep: number, running: RunningPath): Promise<void> {
  const [echoHost, echoPort] = splitHostPort(running.to.echo)
  const [iperfHost, iperfPort] = splitHostPort(running.to.iperf)
  const attempt = async (metric: string, run: () => Promise<unknown>): Promise<void> => {
    if (!METRICS.has(metric === 'tput_p1' ? 'tput' : metric)) return
    try {
      await emit(name, rep, metric, await run())
    } catch (error) {
      log(`${name} ${metric} failed: ${(error as Error).message}`)
      await emit(name, rep, metric, {error: true})
    }
  }

  const from = running.from ?? bench.pod1
  // warm-up: pools, JITs and TLS sessions exist before the figures
  await bench.topo.exec(from.netns, path.join(BIN, 'lat'), [echoHost, echoPort, '2000', String(LAT_SIZE), '100'], {timeoutMs: 60_000})
  await bench.topo.exec(from.netns, 'iperf3', ['-c', iperfHost, '-p', iperfPort, '-t', '1', '-J'], {timeoutMs: 30_000})
  await attempt('tput_p1', async () => {
    const before = await cpuTicks(running.pids)
    const report = await fromPod(bench, from, 'iperf3', ['-c', iperfHost, '-p', iperfPort, '-t', String(TPUT_SECS), '-J'], (TPUT_SECS + 30) * 1000) as {end: {sum_received: {bits_per_second: number; bytes: number}}}
    const cpuSeconds = (await cpuTicks(running.pids) - before) / 100
    const {bits_per_second: bps, bytes} = report.end.sum_received
    return {bytes, gbps: bps / 1e9, proxy_cpu_s: cpuSeconds, proxy_cpu_s_per_gib: cpuSeconds / (bytes / 2 ** 30)}
  })
  await attempt('lat', async () => {
    const before = await cpuNanos(running.pids)
    const report = await probed(bench, name, rep, running, () => fromPod(bench, from, path.join(BIN, 'lat'), [echoHost, echoPort, String(LAT_N), String(LAT_SIZE), '1000'], 120_000)) as object
    const nanos = await cpuNanos(running.pids) - before
    return {...report, ...(running.pids.length > 0 ? {proxy_cpu_us_per_rt: nanos / 1e3 / (LAT_N + 1000)} : {})}
  })
  await attempt('connrate', async () => {
    const before = await cpuTicks(running.pids)
    const report = await fromPod(bench, from, path.join(BIN, 'connrate'), [echoHost, echoPort, String(CONN_THREADS), String(CONN_SECS), '64'], (CONN_SECS + 60) * 1000) as {conns?: number}
    const cpuSeconds = (await cpuTicks(running.pids) - before) / 100
    return {...report, proxy_cpu_s: cpuSeconds, ...(report.conns ? {proxy_cpu_us_per_conn: (cpuSeconds * 1e6) / report.conns} : {})}
  })
}

// ---------- main ----------

/** The harness's C tools and certificates, built as its harness.sh builds them when this runs on its own. */
async function prepareTools(): Promise<void> {
  if (!(await stat(path.join(SHARED_BENCH, 'tools')).catch(() => undefined))) throw new Error(`the peers' bench is not at ${SHARED_BENCH}: set PEER_BENCH to the shared bench folder`)
  await mkdir(BIN, {recursive: true})
  for (const tool of ['echo', 'lat', 'connrate']) {
    const source = path.join(SHARED_BENCH, 'tools', `${tool}.c`)
    const binary = path.join(BIN, tool)
    const fresh = await Promise.all([stat(binary).catch(() => undefined), stat(source)]).then(([built, src]) => built !== undefined && built.mtimeMs >= src.mtimeMs)
    if (!fresh) await exec('gcc', ['-O2', '-Wall', '-pthread', '-o', binary, source])
  }

  await exec('bash', [path.join(SHARED_BENCH, 'lib/certs.sh'), CERTS])
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    log('skipped: the ambient path needs root (network namespaces, iptables); run `sudo npm run bench`')
    return
  }

  await rm(OUT, {force: true, recursive: true})
  await mkdir(WORK, {recursive: true})
  await prepareTools()
  const cleanups: Bench['cleanups'] = []
  const ctx = {after: (fn: () => Promise<void> | void) => void cleanups.push(fn)}
  try {
    const topo = await createTopology(ctx, {nodes: 2, podsPerNode: 2})
    const [node1, node2] = topo.nodes as [TopoNode, TopoNode]
    const [pod1, pod2, pod3] = [node1.pods[0]!, node2.pods[0]!, node2.pods[1]!]
    const bench: Bench = {cleanups, ctx, echoPid: 0, node1, node2, pod1, pod2, pod3, topo}
    bench.echoPid = spawnIn(bench, pod2.netns, 'echo', path.join(BIN, 'echo'), [String(ECHO_PORT), '0.0.0.0']).pid!
    spawnIn(bench, pod2.netns, 'iperf3-server', 'iperf3', ['-s', '-p', String(IPERF_PORT)])
    await waitEcho(bench, hostPort(pod2.ip, ECHO_PORT))
    const mesh = PATHS.some((name) => name.startsWith('ztctl-') || name.endsWith('-rules')) ? await ambientMesh(bench) : undefined
    const up: Record<string, () => Promise<RunningPath>> = {
      direct: async () => direct(bench), 'direct-local': async () => directLocal(bench), haproxy: () => haproxy(bench), 'haproxy-plain': () => haproxyPlain(bench), stunnel: () => stunnel(bench), ztctl: () => tunnel(bench), 'ztctl-ambient': () => meshed(bench, mesh!), 'ztctl-inbound-plain': () => inboundPlain(bench, mesh!), 'ztctl-local': () => localFastPath(bench, mesh!),
      'direct-rules': () => rulesOnly(bench, mesh!, direct(bench)), 'ztctl-rules': async () => rulesOnly(bench, mesh!, await tunnel(bench)),
    }
    const notes = new Map<string, string>()
    log(`results -> ${OUT}; paths ${PATHS.join(' ')}; ${REPS} rep(s)`)
    for (let rep = 1; rep <= REPS; rep++) {
      for (const name of PATHS) {
        if (!up[name]) throw new Error(`unknown path ${name} (AMBIENT_PATHS: ${Object.keys(up).join(' ')})`)
        log(`rep ${rep}/${REPS} path ${name}`)
        let running: RunningPath
        try {
          running = await up[name]()
        } catch (error) {
          log(`${name} failed to start: ${(error as Error).message}`)
          continue
        }

        notes.set(name, running.note)
        try {
          await measure(bench, name, rep, running)
        } finally {
          await running.down()
        }
      }
    }

    await writeFile(path.join(OUT, 'path-notes.txt'), [...notes].map(([name, note]) => `${name}: ${note}`).join('\n') + '\n')
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup()
  }
}

await main()

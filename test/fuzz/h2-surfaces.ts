// The fuzz target of issue 11: the HBONE server (an agent process on each data path, the C engine and
// node:http2, attacked with a valid mesh certificate), the controller's HTTP/2 surface (a controller process,
// unauthenticated) and its config stream (NDJSON from an enrolled agent identity). Cases come from
// generators.ts, seeded. A connection carries up to 8 cases, until the server closes it (a full TLS handshake
// is what a case costs most); a config-stream case is one stream. Every round (2 s) checks what must hold:
// every process alive, no sanitizer report and no internal error or uncaught exception in its output, no
// answer 500 / ZT_ERR_INTERNAL, every surface still answering a legitimate request, file descriptors bounded;
// at the end, descriptors back to the baseline. A failed check is a finding.
//
// Not part of `npm test` (that runs test/**/*.test.ts). Bounded in time:
//   node --import tsx test/fuzz/h2-surfaces.ts --seconds 60 [--seed 7] [--report fuzz.json]
//   node --import tsx test/fuzz/h2-surfaces.ts --seed 7 --only hbone-native:1234      (replay one connection)
// Against the C engine built with AddressSanitizer + UndefinedBehaviorSanitizer: test/fuzz/sanitized.sh.
import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {parseArgs} from 'node:util'

import {ControllerClient} from '../../src/lib/client/controller-client.js'
import {type IdentityFile, readIdentityFile} from '../../src/lib/identity/file.js'
import {type AgentProcess, spawnAgentProcess} from '../helpers/agent-process.js'
import {startTestController, type TestController} from '../helpers/controller.js'
import {footprint} from '../helpers/footprint.js'
import {hboneConnect} from '../helpers/hbone-client.js'
import {FRAME, h2Connect, parseFrames} from '../helpers/hostile-h2.js'
import {createMesh, echoServer, tempDir, tunnelConfig} from '../proxy/helpers.js'
import {configStreamCase, http2Case, type Rng, rngFor} from './generators.js'

const {values: options} = parseArgs({
  options: {
    concurrency: {default: '4', type: 'string'},
    only: {type: 'string'},
    report: {type: 'string'},
    seconds: {default: '60', type: 'string'},
    seed: {default: String(Date.now() % 1_000_000), type: 'string'},
  },
})

const SEED = Number(options.seed)
const FD_MARGIN = 600
/** How long a case waits for the server's reaction (an answer, a GOAWAY, the close) before it hangs up. */
const REACTION_MS = 30
const CASES_PER_CONNECTION = 8
/** Descriptors must be back at baseline + 20 this soon after the last case: CONTROLLER_BOUNDS.idleSessionMs + margin. */
const RECOVERY_MS = 35_000
/** What must never appear in a process's output. */
const FINDING_PATTERNS = [
  /ERROR: AddressSanitizer/, /ERROR: LeakSanitizer/, /runtime error:/, /SUMMARY: \w+Sanitizer/, // the sanitized C engine
  /"message":"request (handler )?failed"/, // the controller: an error that was not a ZtError
  /Internal error|uncaughtException|unhandledRejection|FATAL ERROR/, /"level":(60|"fatal")/,
]

interface Surface {
  name: string
  pid: () => number
  output: () => string
  /** one connection's cases (or one stream); the count run, and a finding when an answer is one */
  run(rng: Rng): Promise<{cases: number; finding?: string}>
  /** undefined when a legitimate request is served */
  healthy(): Promise<string | undefined>
}

interface SurfaceStats {
  cases: number
  /** connections (streams, for the config stream): the unit a seed replays */
  connections: number
  findings: string[]
  scanned: number
}

const cleanups: (() => Promise<void> | void)[] = []
const scope = {after: (fn: () => Promise<void> | void) => void cleanups.push(fn), diagnostic() {}} as unknown as Parameters<typeof tempDir>[0]

/**
 * One hostile connection (the TLS handshake is what costs): up to CASES_PER_CONNECTION cases in a row, each
 * followed by a short wait for the server's reaction, until the server closes it. Returns the cases run and
 * what the server sent.
 */
async function sendCases(rng: Rng, port: number, makeCase: (first: boolean) => Buffer[], tls?: {ca: string; cert: string; key: string}): Promise<{cases: number; received: Buffer}> {
  const peer = await h2Connect({...tls, port, preface: false, timeoutMs: 5000}).catch(() => undefined)
  if (!peer) return {cases: 0, received: Buffer.alloc(0)}
  let cases = 0
  for (const count = 1 + Math.floor(rng() * CASES_PER_CONNECTION); cases < count;) {
    const pieces = makeCase(cases === 0)
    cases++
    for (const piece of pieces) {
      peer.write(piece)
      if (pieces.length > 2) await new Promise((resolve) => setImmediate(resolve))
    }

    if (await peer.closed(REACTION_MS)) break
  }

  const received = peer.received()
  peer.destroy()
  return {cases, received}
}

/** A response HEADERS block starting with HPACK static index 14 is `:status 500`. */
const answered500 = (received: Buffer): boolean => parseFrames(received).some((frame) => frame.type === FRAME.HEADERS && frame.payload[0] === 0x8e)

async function agentSurface(dataPath: 'native' | 'node'): Promise<Surface> {
  const dir = await tempDir(scope)
  const mesh = await createMesh()
  const [agentB, attacker, friend] = [await mesh.identity('agent-b'), await mesh.identity('attacker'), await mesh.identity('friend')]
  const echo = await echoServer(scope)
  const target = `127.0.0.1:${echo.port}`
  const files = {config: path.join(dir, 'config.json'), identity: path.join(dir, 'agent-b.json'), ready: path.join(dir, 'ready.json')}
  await writeFile(files.identity, JSON.stringify(agentB), {mode: 0o600})
  await writeFile(files.config, JSON.stringify(tunnelConfig({client: friend, server: agentB, serverHbone: '127.0.0.1:1', targets: [{host: '127.0.0.1', port: echo.port}]})))
  const agent: AgentProcess = await spawnAgentProcess(scope, {args: ['--config', files.config, '--data-path', dataPath, '--log-level', 'error'], identityFile: files.identity, readyFile: files.ready})
  const hbone = agent.ready.addresses.hbone
  const port = Number(hbone.slice(hbone.lastIndexOf(':') + 1))
  return {
    name: `hbone-${dataPath}`,
    output: () => agent.stderr() + agent.stdout(),
    pid: () => agent.child.pid!,
    async run(rng) {
      return sendCases(rng, port, (first) => http2Case(rng, 'hbone', target, first), {ca: attacker.ca, cert: attacker.cert, key: attacker.key})
    },
    async healthy() {
      if (agent.child.exitCode !== null || agent.child.signalCode !== null) return `the agent exited (${agent.child.exitCode ?? agent.child.signalCode})`
      const attempt = await hboneConnect(hbone, {ca: friend.ca, cert: friend.cert, key: friend.key}, target)
      const echoed = attempt.status === 200
        ? await new Promise<boolean>((resolve) => {
          attempt.stream.once('data', () => resolve(true))
          attempt.stream.write('ping')
          setTimeout(() => resolve(false), 10_000).unref()
        })
        : false
      attempt.session.destroy()
      return echoed ? undefined : `a legitimate tunnel was not served (status ${attempt.status})`
    },
  }
}

async function controllerSurfaces(): Promise<Surface[]> {
  const ctl: TestController = await startTestController(scope)
  const admin = await readIdentityFile(ctl.adminIdentityPath)
  for (const args of [['identity', 'create', 'fuzz-agent', '-a', 'agent'], ['enroll', path.join(ctl.home, 'fuzz-agent.jwt')]]) {
    const result = await ctl.run(args)
    if (result.code !== 0) throw new Error(`${args.join(' ')}: ${result.stderr}`)
  }

  const agent: IdentityFile = await readIdentityFile(path.join(ctl.home, 'fuzz-agent.json'))
  const alive = (): string | undefined => {
    // startTestController kills its process at the end; a process that died before is a finding.
    try {
      process.kill(ctl.pid, 0)
      return undefined
    } catch {
      return 'the controller exited'
    }
  }

  const versionAnswered = async (): Promise<string | undefined> => {
    const client = ControllerClient.fromIdentity({...admin, controller: ctl.url}, 10_000)
    try {
      await client.request('GET', '/v1/version')
      return undefined
    } catch (error) {
      return `GET /v1/version failed: ${(error as Error).message}`
    } finally {
      client.close()
    }
  }

  return [
    {
      name: 'controller',
      output: () => ctl.logs(),
      pid: () => ctl.pid,
      async run(rng) {
        const {cases, received} = await sendCases(rng, ctl.port, (first) => http2Case(rng, 'api', '127.0.0.1:1', first))
        return {cases, finding: answered500(received) ? 'the controller answered 500 (an internal error)' : undefined}
      },
      healthy: async () => alive() ?? versionAnswered(),
    },
    {
      name: 'config-stream',
      output: () => '', // the same process: the controller surface scans its log
      pid: () => ctl.pid,
      async run(rng) {
        const client = ControllerClient.fromIdentity({...agent, controller: ctl.url}, 5000)
        try {
          const stream = await client.openStream('/v1/config/stream')
          let answer = ''
          stream.on('data', (chunk: Buffer) => (answer = (answer + chunk.toString()).slice(-64 * 1024)))
          stream.on('error', () => {})
          const lines = configStreamCase(rng, agent.name)
          stream.end(lines.join('\n') + (rng() < 0.8 ? '\n' : ''))
          await new Promise((resolve) => {
            stream.once('close', resolve)
            setTimeout(resolve, 300).unref()
          })
          return {cases: 1, finding: answer.includes('ZT_ERR_INTERNAL') ? `the config stream answered ZT_ERR_INTERNAL to ${JSON.stringify(lines).slice(0, 300)}` : undefined}
        } catch {
          return {cases: 1} // refused or cut: what garbage deserves
        } finally {
          client.close()
        }
      },
      healthy: async () => alive() ?? versionAnswered(),
    },
  ]
}

/** The case index → its own PRNG, so any one case can be replayed alone. */
const caseRng = (surface: string, index: number): Rng => rngFor(SEED * 1_000_003 + index * 7919 + [...surface].reduce((sum, char) => sum + char.charCodeAt(0), 0))

async function main(): Promise<void> {
  const surfaces = [await agentSurface('native'), await agentSurface('node'), ...(await controllerSurfaces())]
  const stats = new Map<string, SurfaceStats>(surfaces.map((surface) => [surface.name, {cases: 0, connections: 0, findings: [], scanned: 0}]))
  const baseline = new Map(await Promise.all(surfaces.map(async (surface) => [surface.pid(), (await footprint(surface.pid())).fds] as const)))
  const started = Date.now()
  const deadline = started + Number(options.seconds) * 1000

  if (options.only) {
    const [name, index] = options.only.split(':')
    const surface = surfaces.find((candidate) => candidate.name === name)
    if (!surface) throw new Error(`--only ${options.only}: surfaces are ${surfaces.map((candidate) => candidate.name).join(', ')}`)
    const {cases, finding} = await surface.run(caseRng(name!, Number(index)))
    Object.assign(stats.get(surface.name)!, {cases, connections: 1})
    if (finding) stats.get(surface.name)!.findings.push(`connection ${index}: ${finding}`)
  } else {
    const concurrency = Number(options.concurrency)
    const workers = surfaces.flatMap((surface) => Array.from({length: concurrency}, async () => {
      const stat = stats.get(surface.name)!
      while (Date.now() < deadline) {
        const index = stat.connections++
        const {cases, finding} = await surface.run(caseRng(surface.name, index)).catch((error: Error) => ({cases: 0, finding: `the fuzzer itself failed: ${error.message}`}))
        stat.cases += cases
        if (finding) stat.findings.push(`connection ${index} (--seed ${SEED} --only ${surface.name}:${index}): ${finding}`)
      }
    }))
    const checks = (async () => {
      while (Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 2000))
        await checkAll(surfaces, stats, baseline, FD_MARGIN)
      }
    })()
    await Promise.all([...workers, checks])
  }

  const seconds = (Date.now() - started) / 1000
  // Recovery: once the attack stops, every surface serves and is back at its baseline descriptors within the
  // longest bound that applies (a session idle for 30 s is closed), or that is a finding.
  const recovered = Date.now() + RECOVERY_MS
  while (Date.now() < recovered) {
    const counts = await Promise.all(surfaces.map(async (surface) => (await footprint(surface.pid()).catch(() => ({fds: -1}))).fds - baseline.get(surface.pid())!))
    if (counts.every((extra) => extra <= 20)) break
    await new Promise((resolve) => setTimeout(resolve, 500))
  }

  await checkAll(surfaces, stats, baseline, 20)

  const report = {
    seconds: Math.round(seconds),
    seed: SEED,
    surfaces: surfaces.map((surface) => {
      const stat = stats.get(surface.name)!
      return {cases: stat.cases, casesPerSecond: Math.round(stat.cases / seconds), connections: stat.connections, findings: stat.findings, name: surface.name}
    }),
  }
  const findings = report.surfaces.reduce((sum, surface) => sum + surface.findings.length, 0)
  for (const surface of report.surfaces) {
    process.stdout.write(`${surface.name.padEnd(14)} ${String(surface.cases).padStart(7)} cases ${String(surface.casesPerSecond).padStart(5)}/s on ${String(surface.connections).padStart(6)} connections  ${surface.findings.length} findings\n`)
    for (const finding of surface.findings.slice(0, 20)) process.stdout.write(`  - ${finding}\n`)
  }

  process.stdout.write(`seed ${SEED}, ${report.seconds} s, ${findings} findings\n`)
  if (options.report) await writeFile(options.report, JSON.stringify(report, null, 2) + '\n')
  process.exitCode = findings > 0 ? 1 : 0
}

async function checkAll(surfaces: Surface[], stats: Map<string, SurfaceStats>, baseline: Map<number, number>, fdMargin: number): Promise<void> {
  for (const surface of surfaces) {
    const stat = stats.get(surface.name)!
    const output = surface.output()
    const fresh = output.slice(stat.scanned)
    stat.scanned = output.length
    for (const pattern of FINDING_PATTERNS) {
      const match = pattern.exec(fresh)
      if (match) stat.findings.push(`output: ${fresh.slice(Math.max(0, match.index - 200), match.index + 800)}`)
    }

    const unhealthy = await surface.healthy().catch((error: Error) => error.message)
    if (unhealthy) stat.findings.push(unhealthy)
    const fds = await footprint(surface.pid()).then((now) => now.fds, () => -1)
    const allowed = baseline.get(surface.pid())! + fdMargin
    if (fds > allowed) stat.findings.push(`${fds} open file descriptors (baseline + ${fdMargin} = ${allowed} allowed)`)
  }
}

try {
  await main()
} finally {
  for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => {})
}

// A real controller for tests: `bin/run.js controller run` as a child process on 127.0.0.1, port 0,
// with its own ZTCTL_HOME (contexts, admin identity) and data dir in a fresh temp folder.
//
//   const ctl = await startTestController(t)            // registers its own teardown with t.after
//   ctl.url                // https://127.0.0.1:PORT
//   ctl.home               // ZTCTL_HOME of this controller (contexts.json, identities/admin.json)
//   ctl.adminIdentityPath  // the admin identity file the controller wrote
//   ctl.env                // env for child processes: ZTCTL_HOME, NO_COLOR
//   await ctl.run(['identity', 'list', '-o', 'json'])   // → {code, stdout, stderr}; cwd = ctl.home
//   await ctl.stop()       // SIGTERM, waits for exit
//   await ctl.kill9()      // SIGKILL, waits for exit
//   await ctl.restart()    // start again on the same port, data dir and home
//   const a = await ctl.startAgent('agent-a')   // identity create + enroll + `agent run` (port 0 everywhere), ready
//   a.ready.addresses.admin; a.logs(); await a.stop()
//
// Options: extraArgs (e.g. ['--cert-ttl', '4s']), port (reuse a port), dataDir, home; netns + listenHost run
// the controller (and ctl.run) inside a network namespace, e.g. a test "node" (`ip netns exec`, same PID).
// Needs a built dist/ (`npm run build`). Everything is killed by PID; nothing is left running.
import {type ChildProcess, spawn} from 'node:child_process'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

export const RUN_JS = fileURLToPath(new URL('../../bin/run.js', import.meta.url))
const READY_TIMEOUT_MS = 30_000
const EXIT_TIMEOUT_MS = 10_000

export interface RunResult {
  code: null | number
  stderr: string
  stdout: string
}

export interface TestControllerOptions {
  dataDir?: string
  extraArgs?: string[]
  home?: string
  /** IP to listen on (default 127.0.0.1) */
  listenHost?: string
  /** run inside this network namespace (by name, as `ip netns exec` takes it) */
  netns?: string
  /** RLIMIT_NOFILE of the controller process (`prlimit --nofile=N:N`), e.g. 1024 as on many hosts */
  nofile?: number
  port?: number
}

export interface TestAgent {
  logs(): string
  name: string
  pid: number
  ready: {addresses: {admin?: string; advertise: string; hbone: string; inbound: Record<string, string>; metrics?: string; readiness?: string}}
  stop(): Promise<void>
}

export interface TestController {
  adminIdentityPath: string
  dataDir: string
  env: NodeJS.ProcessEnv
  home: string
  pid: number
  port: number
  url: string
  /** stderr (pino logs) of the current process so far */
  logs(): string
  kill9(): Promise<void>
  restart(): Promise<void>
  run(args: string[], options?: {cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number}): Promise<RunResult>
  /** Create and enroll NAME, then run it as a real agent process of this controller (ready file in $ZTCTL_HOME/agents/). */
  startAgent(name: string, extraArgs?: string[]): Promise<TestAgent>
  stop(): Promise<void>
}

interface TestContextLike {
  after(fn: () => Promise<void> | void): void
}

/** Run `bin/run.js ARGS` with ENV; resolves with the exit code and output (bounded by timeoutMs). */
export function runCli(args: string[], env: NodeJS.ProcessEnv, options: {cwd?: string; netns?: string; timeoutMs?: number} = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const [file, argv] = inNetns(options.netns, [RUN_JS, ...args])
    const child = spawn(file, argv, {cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code, stderr, stdout})
    })
  })
}

/**
 * `node ARGS`, or `ip netns exec NETNS node ARGS`, optionally under `prlimit --nofile=N:N` (ip and prlimit
 * exec node: the PID stays the controller's).
 */
function inNetns(netns: string | undefined, args: string[], nofile?: number): [string, string[]] {
  const command = nofile ? ['prlimit', `--nofile=${nofile}:${nofile}`, process.execPath, ...args] : [process.execPath, ...args]
  if (netns) return ['ip', ['netns', 'exec', netns, ...command]]
  return [command[0]!, command.slice(1)]
}

export async function startTestController(t: TestContextLike, options: TestControllerOptions = {}): Promise<TestController> {
  const home = options.home ?? (await mkdtemp(path.join(tmpdir(), 'ztctl-test-')))
  const dataDir = options.dataDir ?? path.join(home, 'controller')
  const env: NodeJS.ProcessEnv = {...process.env, NO_COLOR: '1', ZTCTL_HOME: home}
  delete env.ZTCTL_CONTEXT
  let child: ChildProcess | undefined
  let stderr = ''
  let port = options.port ?? 0
  let url = ''

  const launch = async (): Promise<void> => {
    const args = [RUN_JS, 'controller', 'run', '--listen', `${options.listenHost ?? '127.0.0.1'}:${port}`, '--data-dir', dataDir, ...(options.extraArgs ?? [])]
    // A restart on the same port may race the old socket's release: retry a few times.
    for (let attempt = 0; attempt < 5; attempt++) {
      stderr = ''
      const [file, argv] = inNetns(options.netns, args, options.nofile)
      const started = spawn(file, argv, {cwd: home, env, stdio: ['ignore', 'pipe', 'pipe']})
      child = started
      started.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
      const outcome = await waitForBanner(started)
      if (outcome.url) {
        url = outcome.url
        port = Number(new URL(url).port)
        return
      }

      if (!/EADDRINUSE|address already in use/.test(stderr)) {
        throw new Error(`controller did not start (exit ${outcome.code}):\n${outcome.stdout}\n${stderr}`)
      }

      await new Promise((resolve) => setTimeout(resolve, 200))
    }

    throw new Error(`controller could not bind port ${port}:\n${stderr}`)
  }

  const waitExit = async (signal: NodeJS.Signals): Promise<void> => {
    const current = child
    if (!current || current.exitCode !== null || current.signalCode !== null) return
    const exited = new Promise<void>((resolve) => current.once('exit', () => resolve()))
    current.kill(signal)
    const timer = setTimeout(() => current.kill('SIGKILL'), EXIT_TIMEOUT_MS)
    await exited
    clearTimeout(timer)
  }

  await launch()
  const controller: TestController = {
    adminIdentityPath: path.join(home, 'identities', 'admin.json'),
    dataDir,
    env,
    home,
    get pid() {
      return child!.pid!
    },
    get port() {
      return port
    },
    get url() {
      return url
    },
    logs: () => stderr,
    kill9: () => waitExit('SIGKILL'),
    async restart() {
      await waitExit('SIGTERM')
      await launch()
    },
    run: (args, runOptions = {}) => runCli(args, {...env, ...runOptions.env}, {cwd: runOptions.cwd ?? home, netns: options.netns, timeoutMs: runOptions.timeoutMs}),
    startAgent: async (name, extraArgs = []) => {
      const agent = await spawnAgent(controller, name, extraArgs)
      t.after(() => agent.stop())
      return agent
    },
    stop: () => waitExit('SIGTERM'),
  }
  t.after(async () => {
    await waitExit('SIGKILL')
    if (!options.home) await rm(home, {force: true, recursive: true})
  })
  return controller
}

async function spawnAgent(ctl: TestController, name: string, extraArgs: string[]): Promise<TestAgent> {
  for (const args of [['identity', 'create', name, '-a', 'agent'], ['enroll', `${name}.jwt`, '--force']]) {
    const result = await ctl.run(args)
    if (result.code !== 0) throw new Error(`ztctl ${args.join(' ')} failed (${result.code}): ${result.stderr}`)
  }

  const readyFile = path.join(ctl.home, 'agents', `${name}.json`)
  await rm(readyFile, {force: true})
  const loopback = '127.0.0.1:0'
  const child = spawn(process.execPath, [RUN_JS, 'agent', 'run', '-i', path.join(ctl.home, `${name}.json`), '--hbone', loopback, '--admin', loopback, '--metrics', loopback,
    '--readiness', loopback, '--ready-file', readyFile, '--drain-timeout', '1s', ...extraArgs], {cwd: ctl.home, env: ctl.env, stdio: ['ignore', 'pipe', 'pipe']})
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_TIMEOUT_MS)
    await exited
    clearTimeout(timer)
  }

  const deadline = Date.now() + READY_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`agent ${name} exited (${child.exitCode}) while starting:\n${output}`)
    const ready = await readFile(readyFile, 'utf8').then((text) => JSON.parse(text) as TestAgent['ready'], () => undefined)
    if (ready) return {logs: () => output, name, pid: child.pid!, ready, stop}
    await new Promise((resolve) => setTimeout(resolve, 50))
  }

  await stop()
  throw new Error(`agent ${name} not ready within ${READY_TIMEOUT_MS} ms:\n${output}`)
}

/** Resolves with the URL from the banner, or with the exit code when the process dies first. */
function waitForBanner(child: ChildProcess): Promise<{code?: null | number; stdout: string; url?: string}> {
  return new Promise((resolve) => {
    let stdout = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      resolve({code: null, stdout})
    }, READY_TIMEOUT_MS)
    const onData = (chunk: Buffer): void => {
      stdout += chunk.toString()
      const match = /controller listening at: (https:\/\/\S+)/.exec(stdout)
      if (match) {
        clearTimeout(timer)
        child.stdout!.off('data', onData)
        child.stdout!.resume()
        child.off('exit', onExit)
        resolve({stdout, url: match[1]})
      }
    }

    const onExit = (code: null | number): void => {
      clearTimeout(timer)
      resolve({code, stdout})
    }

    child.stdout!.on('data', onData)
    child.once('exit', onExit)
  })
}

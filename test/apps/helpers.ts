// A real mesh for the apps' tests: the controller (bin/run.js controller run), agents as `agent run`
// processes following it (port 0 everywhere, ready files in $ZTCTL_HOME/agents/ so `proxy-config AGENT`
// finds them), user identities created and enrolled like an admin would, and the CLI run as any of them.
//
//   const mesh = await startAppMesh(t)
//   const b = await mesh.agent('agent-b', {dataPath: 'node'})
//   const alice = await mesh.user('alice')                 // path of alice's identity file
//   await mesh.zt(['terminal', 'config', '--agent', 'agent-b', '--add-user', '@alice'])
//   await b.waitForApp('terminal', (app) => app.allow.includes('@alice'))
//   await mesh.zt(['script', 'run', 'agent-b', '-i', alice, '--', 'uname'])
import {type ChildProcess, spawn} from 'node:child_process'
import {mkdir, readFile, rm} from 'node:fs/promises'
import path from 'node:path'
import type {TestContext} from 'node:test'

import type {AppDump, ConfigDump} from '../../src/lib/proxy/daemon/agent.js'
import type {ReadyFile} from '../../src/lib/proxy/daemon/launch.js'
import {RUN_JS, type RunResult, startTestController, type TestController} from '../helpers/controller.js'
import {httpGet, waitFor} from '../proxy/helpers.js'

export interface AppAgent {
  /** the agent's own log lines, parsed */
  appLines(message?: RegExp): Record<string, unknown>[]
  configDump(): Promise<ConfigDump>
  logs(): string
  /** one sample of a metric (all label sets summed) from /metrics */
  metric(name: string, labels?: Record<string, string>): Promise<number>
  name: string
  pid: number
  ready: ReadyFile
  stop(): Promise<void>
  /** wait until the agent applied APP (and CHECK holds for it) */
  waitForApp(app: AppDump['app'], check?: (app: AppDump) => boolean): Promise<AppDump>
}

export interface AppMesh {
  agent(name: string, options?: {advertise?: string; dataPath?: 'native' | 'node'; env?: NodeJS.ProcessEnv}): Promise<AppAgent>
  ctl: TestController
  /** create and enroll a user identity; returns its identity file */
  user(name: string): Promise<string>
  /** run the CLI as the admin (the context), or with -i for a user */
  zt(args: string[], options?: {env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number}): Promise<RunResult>
}

const EXIT_TIMEOUT_MS = 10_000

export async function startAppMesh(t: TestContext): Promise<AppMesh> {
  const ctl = await startTestController(t)
  await mkdir(path.join(ctl.home, 'agents'), {recursive: true})
  const zt = async (args: string[], options: {env?: NodeJS.ProcessEnv; timeoutMs?: number} = {}): Promise<RunResult> => ctl.run(args, options)
  const enroll = async (name: string, role: string[]): Promise<string> => {
    for (const args of [['identity', 'create', name, ...role], ['enroll', `${name}.jwt`, '--force']]) {
      const result = await zt(args)
      if (result.code !== 0) throw new Error(`ztctl ${args.join(' ')} failed (${result.code}): ${result.stderr}`)
    }

    return path.join(ctl.home, `${name}.json`)
  }

  return {
    agent: async (name, options = {}) => {
      const identity = await enroll(name, ['-a', 'agent'])
      const agent = await spawnAgent(ctl, name, identity, options)
      t.after(() => agent.stop())
      return agent
    },
    ctl,
    user: (name) => enroll(name, []),
    zt,
  }
}

async function spawnAgent(ctl: TestController, name: string, identity: string, options: {advertise?: string; dataPath?: 'native' | 'node'; env?: NodeJS.ProcessEnv}): Promise<AppAgent> {
  const readyFile = path.join(ctl.home, 'agents', `${name}.json`)
  await rm(readyFile, {force: true})
  const loopback = '127.0.0.1:0'
  const args = [RUN_JS, 'agent', 'run', '-i', identity, '--hbone', loopback, '--admin', loopback, '--metrics', loopback, '--readiness', loopback,
    '--ready-file', readyFile, '--drain-timeout', '1s', ...(options.dataPath ? ['--data-path', options.dataPath] : []), ...(options.advertise ? ['--advertise', options.advertise] : [])]
  const child: ChildProcess = spawn(process.execPath, args, {cwd: ctl.home, env: {...ctl.env, ...options.env}, stdio: ['ignore', 'pipe', 'pipe']})
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_TIMEOUT_MS)
    await exited
    clearTimeout(timer)
  }

  const ready = await waitFor(`agent ${name} ready (output so far: ${output})`, async () => {
    if (child.exitCode !== null) throw new Error(`agent ${name} exited (${child.exitCode}) while starting:\n${output}`)
    return readFile(readyFile, 'utf8').then((text) => JSON.parse(text) as ReadyFile, () => undefined)
  }, 30_000).catch(async (error: unknown) => {
    await stop()
    throw error
  })
  const configDump = async (): Promise<ConfigDump> => JSON.parse((await httpGet(`http://${ready.addresses.admin}/config_dump`)).body) as ConfigDump
  const lines = (): Record<string, unknown>[] => output.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)
  return {
    appLines: (message) => lines().filter((line) => line.scope === 'app' && (!message || message.test(String(line.message)))),
    configDump,
    logs: () => output,
    async metric(metric, labels = {}) {
      const text = (await httpGet(`http://${ready.addresses.metrics}/metrics`)).body
      const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`)
      return text.split('\n').filter((line) => line.startsWith(`${metric}{`) && wanted.every((label) => line.includes(label)))
        .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0)
    },
    name,
    pid: ready.pid,
    ready,
    stop,
    waitForApp: (app, check = () => true) => waitFor(`${name} to apply its ${app} app`, async () => {
      const dump = await configDump()
      return dump.apps.find((candidate) => candidate.app === app && candidate.enabled && check(candidate))
    }, 15_000),
  }
}

// `ztctl agent run` as a real process (bin/run.js over the built dist/): port 0 for every listener, the
// ready file for the bound addresses, stdout (JSON logs) kept. Killed by PID when the test ends.
//
//   const agent = await spawnAgentProcess(t, {identityFile, readyFile, args: ['--config', file]})
//   agent.ready.addresses.hbone / .admin / .readiness      agent.stdout()      await agent.exited
import {type ChildProcess, spawn} from 'node:child_process'
import {readFile} from 'node:fs/promises'

import type {ReadyFile} from '../../src/lib/proxy/daemon/launch.js'
import {RUN_JS} from './controller.js'

export interface AgentProcess {
  child: ChildProcess
  exited: Promise<number | null>
  ready: ReadyFile
  /** what it wrote to stderr (a sanitizer's reports land here) */
  stderr: () => string
  stdout: () => string
}

export interface AgentProcessOptions {
  /** more flags: --config FILE (static), --drain-timeout ...; without --config the agent follows its controller */
  args?: string[]
  env?: NodeJS.ProcessEnv
  identityFile: string
  readyFile: string
}

export async function spawnAgentProcess(t: {after(fn: () => void): void}, options: AgentProcessOptions): Promise<AgentProcess> {
  const child = spawn(process.execPath, [RUN_JS, 'agent', 'run', '-i', options.identityFile, '--hbone', '127.0.0.1:0', '--admin', '127.0.0.1:0',
    '--metrics', '127.0.0.1:0', '--readiness', '127.0.0.1:0', '--ready-file', options.readyFile, ...(options.args ?? [])], {env: {...process.env, ...options.env}, stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk))
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const deadline = Date.now() + 20_000
  for (;;) {
    const ready = await readFile(options.readyFile, 'utf8').then((text) => JSON.parse(text) as ReadyFile, () => undefined)
    if (ready) return {child, exited, ready, stderr: () => stderr, stdout: () => stdout}
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`agent ${options.identityFile} did not get ready (exit ${child.exitCode}): ${stderr}${stdout}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

// `ztctl agent run` in one call: read the identity, pick the configuration source, start the agent,
// and write the ready file (the actual bound addresses) once it is ready. And the daemon around it:
// once oclif has parsed the flags, the command replaces its process (execve: same PID, same stdio)
// with `node main.js`, the agent without the CLI's modules in memory; `runDaemon` is what both run.
// This module stays light (the agent's modules load on first use): the command imports it to exec.
import {accessSync, constants} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import type {Agent, AgentOptions} from './agent.js'
import type {ConfigSource} from '../state/config-source.js'
import type {LogLevel} from '../observe/log.js'

export interface LaunchOptions {
  admin?: string
  /** with noListen and no admin: serve the admin side door on `<dir>/<identity name>.sock` */
  adminSocketDir?: string
  advertise?: string
  buildVersion: string
  /** static configuration file; without it the agent follows the controller's stream */
  config?: string
  dataPath?: AgentOptions['dataPath']
  drainTimeoutMs: number
  hbone: string
  hubs?: string[]
  /** the identity file; without it, `kubernetes` says how to enroll */
  identityFile?: string
  /** with an identity file: reach the controller here instead of the file's URL (a pod beside the controller's Service) */
  controllerUrl?: string
  /** trim memory after this long without a connection (idle-trim.ts); undefined or 0: never */
  idleTrimMs?: number
  inpod?: AgentOptions['inpod']
  /** `agent run --kubernetes`: no identity file, enroll (and renew) with the pod's ServiceAccount token */
  kubernetes?: import('../../client/kube-enroll.js').KubeEnrollOptions
  sidecar?: AgentOptions['sidecar']
  logLevel: LogLevel
  metrics?: string
  noListen?: boolean
  readiness?: string
  readyFile?: string
}

/** What --ready-file holds. */
export interface ReadyFile {
  addresses: Agent['addresses']
  identity: string
  pid: number
  spiffe: string
}

export async function launchAgent(options: LaunchOptions): Promise<Agent> {
  const [{readIdentityFile}, {runAgent}, {StaticConfigSource}] = await Promise.all([
    import('../../identity/file.js'), import('./agent.js'), import('../state/config-source.js'),
  ])
  const kube = options.kubernetes
  const fromFile = kube ? undefined : await readIdentityFile(options.identityFile!)
  const identity = kube ? await enrollInCluster(kube, options.logLevel) : {...fromFile!, controller: options.controllerUrl ?? fromFile!.controller}
  const configSource: ConfigSource = options.config
    ? new StaticConfigSource(options.config)
    : await controllerSource(identity)
  let admin = options.admin
  if (!admin && options.adminSocketDir) {
    const {mkdir} = await import('node:fs/promises')
    await mkdir(options.adminSocketDir, {mode: 0o700, recursive: true})
    admin = `unix:${path.join(options.adminSocketDir, `${identity.name}.sock`)}`
  }

  const renewIdentity = kube
    ? async () => (await import('../../client/kube-enroll.js')).enrollWithServiceAccount(kube)
    : (options.config ? undefined : (await import('../../client/renew.js')).renewIdentity)
  const agent = await runAgent({
    admin,
    advertise: options.advertise,
    buildVersion: options.buildVersion,
    configSource,
    dataPath: options.dataPath,
    drainTimeoutMs: options.drainTimeoutMs,
    hbone: options.hbone,
    hubs: options.hubs,
    identity,
    identityFile: options.identityFile,
    idleTrimMs: options.idleTrimMs || undefined,
    inpod: options.inpod,
    sidecar: options.sidecar,
    logLevel: options.logLevel,
    metrics: options.metrics,
    noListen: options.noListen,
    readiness: options.readiness,
    renewIdentity,
  })
  if (options.readyFile) {
    const file = options.readyFile
    const {writeFileAtomic} = await import('../../home/home.js')
    void agent.ready.then(async () => {
      const ready: ReadyFile = {addresses: agent.addresses, identity: identity.name, pid: process.pid, spiffe: identity.spiffe}
      await writeFileAtomic(file, JSON.stringify(ready, null, 2) + '\n', 0o644)
      agent.logger.info({file}, 'ready file written')
    }).catch((error: Error) => agent.logger.error({error: error.message, file}, 'cannot write the ready file'))
  }

  return agent
}

/**
 * The first enrollment of a node agent in a cluster: retried with bounded backoff while the controller
 * (or its CA ConfigMap) is not there yet; a refusal (wrong ServiceAccount, wrong node) ends the agent.
 */
async function enrollInCluster(options: import('../../client/kube-enroll.js').KubeEnrollOptions, level: LogLevel) {
  const [{enrollWithServiceAccount, isTransientEnrollError}, {createLogger}] = await Promise.all([
    import('../../client/kube-enroll.js'), import('../observe/log.js'),
  ])
  const logger = await createLogger({level})
  for (let attempt = 1; ; attempt++) {
    try {
      const identity = await enrollWithServiceAccount(options)
      logger.info({controller: options.controller, identity: identity.name, spiffe: identity.spiffe}, 'enrolled with the ServiceAccount token')
      return identity
    } catch (error) {
      if (!isTransientEnrollError(error)) throw error
      const base = Math.min(30_000, 500 * 2 ** Math.min(attempt - 1, 10))
      const retryInMs = Math.round(base / 2 + Math.random() * (base / 2))
      logger.warn({attempt, controller: options.controller, error: (error as Error).message, retryInMs}, 'cannot enroll yet; retrying')
      await new Promise((resolve) => setTimeout(resolve, retryInMs))
    }
  }
}

async function controllerSource(identity: import('../../identity/file.js').IdentityFile): Promise<ConfigSource> {
  const {ControllerConfigSource} = await import('../state/config-source-controller.js')
  return new ControllerConfigSource(identity)
}

/** The daemon's options: the agent's, plus what the command did around it. Crosses execve as JSON. */
export interface DaemonOptions extends LaunchOptions {
  /** --json: a startup failure is printed as {"error": …} on stdout */
  json?: boolean
  /** drain and exit when standard input closes (--stop-with-stdin) */
  stopWithStdin?: boolean
}

/** The environment variable carrying DaemonOptions (JSON) from the command to main.js. */
export const DAEMON_OPTIONS_ENV = 'ZTCTL_AGENT_OPTIONS'
/** Set to 1: run the agent inside the oclif process, as before the daemon existed (debugging). */
export const IN_PROCESS_ENV = 'ZTCTL_AGENT_IN_PROCESS'
/**
 * Node options of the daemon, before any of the command's own (`node --cpu-prof bin/run.js agent run`
 * keeps working). A 4 MB semi-space (V8's default grows to 16+) halves the memory each held tunnel
 * costs (garbage waiting in a large young generation) with throughput and connection rate unchanged
 * within noise; 1 MB cost ~8 % throughput. Figures: docs/benchmarks.md ("Agent memory").
 */
export const DAEMON_NODE_OPTIONS: readonly string[] = ['--max-semi-space-size=4']

/** bin/run.js runs dist/…/main.js; bin/dev.js (tsx) runs src/…/main.ts. */
function daemonEntry(): string {
  const self = fileURLToPath(import.meta.url)
  return path.join(path.dirname(self), `main${path.extname(self)}`)
}

/**
 * Replace this process with the daemon (`node main.js`, same PID and stdio): it never returns then.
 * Returns false, having done nothing, when ZTCTL_AGENT_IN_PROCESS=1, when this Node has no
 * process.execve, or when the entry or the node binary cannot be used (execve would abort, not throw).
 */
export function execDaemon(options: DaemonOptions): boolean {
  if (process.env[IN_PROCESS_ENV] === '1' || typeof process.execve !== 'function') return false
  const entry = daemonEntry()
  try {
    accessSync(entry, constants.R_OK)
    accessSync(process.execPath, constants.X_OK)
  } catch {
    return false
  }

  const env = {...process.env, [DAEMON_OPTIONS_ENV]: JSON.stringify(options)}
  // The command's own arguments follow, unused, so that `ps` still shows `… agent run -i NAME.json …`.
  return process.execve(process.execPath, [process.execPath, ...DAEMON_NODE_OPTIONS, ...process.execArgv, entry, ...process.argv.slice(2)], env)
}

/**
 * Run the agent in this process until it has stopped: SIGTERM/SIGINT drain, and so does the end of stdin
 * with stopWithStdin. Resolves with what stopped it (the caller exits 130 after a SIGINT, as the README says).
 */
export async function runDaemon(options: DaemonOptions): Promise<string | undefined> {
  const agent = await launchAgent(options)
  let stoppedBy: string | undefined
  const stop = (signal: string) => () => {
    stoppedBy ??= signal
    void agent.shutdown(`received ${signal}`)
  }
  process.once('SIGTERM', stop('SIGTERM'))
  process.once('SIGINT', stop('SIGINT'))
  if (options.stopWithStdin) {
    process.stdin.once('close', stop('end of standard input'))
    process.stdin.resume()
  }

  await agent.closed
  // An open stdin pipe would keep the process alive after the agent stopped.
  if (options.stopWithStdin) process.stdin.destroy()
  return stoppedBy
}

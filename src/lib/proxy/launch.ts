// `ztctl agent run` in one call: read the identity, pick the configuration source, start the agent,
// and write the ready file (the actual bound addresses) once it is ready.
import {renewIdentity} from '../client/renew.js'
import {writeFileAtomic} from '../home/home.js'
import {readIdentityFile} from '../identity/file.js'
import {type Agent, type AgentOptions, runAgent} from './agent.js'
import {type ConfigSource, StaticConfigSource} from './config-source.js'
import type {LogLevel} from './log.js'

export interface LaunchOptions {
  admin?: string
  advertise?: string
  buildVersion: string
  /** static configuration file; without it the agent follows the controller's stream */
  config?: string
  drainTimeoutMs: number
  hbone: string
  identityFile: string
  inpod?: AgentOptions['inpod']
  sidecar?: AgentOptions['sidecar']
  logLevel: LogLevel
  metrics?: string
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
  const identity = await readIdentityFile(options.identityFile)
  const configSource: ConfigSource = options.config
    ? new StaticConfigSource(options.config)
    : await controllerSource(identity)
  const agent = await runAgent({
    admin: options.admin,
    advertise: options.advertise,
    buildVersion: options.buildVersion,
    configSource,
    drainTimeoutMs: options.drainTimeoutMs,
    hbone: options.hbone,
    identity,
    identityFile: options.identityFile,
    inpod: options.inpod,
    sidecar: options.sidecar,
    logLevel: options.logLevel,
    metrics: options.metrics,
    readiness: options.readiness,
    renewIdentity: options.config ? undefined : renewIdentity,
  })
  if (options.readyFile) {
    const file = options.readyFile
    void agent.ready.then(async () => {
      const ready: ReadyFile = {addresses: agent.addresses, identity: identity.name, pid: process.pid, spiffe: identity.spiffe}
      await writeFileAtomic(file, JSON.stringify(ready, null, 2) + '\n', 0o644)
      agent.logger.info({file}, 'ready file written')
    }).catch((error: Error) => agent.logger.error({error: error.message, file}, 'cannot write the ready file'))
  }

  return agent
}

async function controllerSource(identity: Awaited<ReturnType<typeof readIdentityFile>>): Promise<ConfigSource> {
  const {ControllerConfigSource} = await import('./config-source-controller.js')
  return new ControllerConfigSource(identity)
}

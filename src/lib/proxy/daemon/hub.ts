// The hub's lifecycle (`ztctl hub run`, or embedded by `controller run --hub`): follow the mesh's
// configuration (policies, identities, revocations: the hub authorizes relays with them), listen for
// agents on the native engine, serve /hub_status, /metrics, /healthz/ready on an admin side door, renew
// the certificate at half-life and take a new one put into its identity file, and on shutdown stop accepting, let relays drain up to a deadline, close.
import type {Server} from 'node:http'

import type {ResourceStatus} from '../../config/types.js'
import {ExitCode, ZtError} from '../../errors.js'
import type {IdentityFile} from '../../identity/file.js'
import {trustDomainOf} from '../../pki/cert-info.js'
import {formatHostPort, type HostPort, parseHostPort} from '../address.js'
import {HboneEngine} from '../hbone/hbone-engine.js'
import {HUB_ROLE} from '../hbone/hub-links.js'
import {NativeContexts} from '../hbone/native-tls.js'
import {Credentials} from '../hbone/tls.js'
import {adminRoutes, metricsRoutes, readinessRoutes, serveRoutes} from '../observe/admin.js'
import {createLogger, type Logger, type LogLevel} from '../observe/log.js'
import {Metrics} from '../observe/metrics.js'
import {ConnectionRegistry} from '../observe/registry.js'
import {ConnectionTracker} from '../paths/connection.js'
import {HubServer, type HubStatus} from '../paths/hub-relay.js'
import {identityNameFromSpiffe} from '../state/authz.js'
import type {ConfigSource, ConfigUpdate} from '../state/config-source.js'
import {MeshState} from '../state/state.js'
import {type IdentityUpkeep, keepIdentity} from './renewal.js'

export const DEFAULT_HUB_LISTEN = '0.0.0.0:15009'

export interface HubOptions {
  /** admin side door (/hub_status, /metrics, /healthz/ready, /logging, /quitquitquit): `HOST:PORT` or `unix:PATH` */
  admin?: string
  /** the address agents dial (logs); default: the bound one */
  advertise?: string
  buildVersion?: string
  configSource: ConfigSource
  drainTimeoutMs?: number
  identity: IdentityFile
  /** the file IDENTITY came from: watched for a new certificate put there (a Secret volume's update), rewritten after each renewal when writable */
  identityFile?: string
  /** `HOST:PORT` agents dial */
  listen: string
  logDestination?: NodeJS.WritableStream | number
  logLevel?: LogLevel
  /** Renew the certificate at half-life with this; undefined: never. */
  renewIdentity?: (identity: IdentityFile) => Promise<IdentityFile>
  /** tests shorten the PING cadence */
  keepaliveIntervalMs?: number
  keepaliveTimeoutMs?: number
}

/** GET /hub_status */
export interface HubDump extends HubStatus {
  address: string
  hub: {name: string; spiffe: string}
  ready: boolean
  version: number
}

export interface Hub {
  readonly addresses: {admin?: string; listen: string}
  readonly closed: Promise<void>
  readonly logger: Logger
  readonly metrics: Metrics
  /** resolves once the first configuration is applied */
  readonly ready: Promise<void>
  shutdown(reason?: string): Promise<void>
  status(): HubDump
}

function address(text: string, what: string): HostPort {
  const parsed = parseHostPort(text, '0.0.0.0')
  if (!parsed) throw new ZtError('ZT_ERR_USAGE', `--${what} ${JSON.stringify(text)} is not HOST:PORT`, {exit: ExitCode.usage, suggestion: `e.g. --${what} ${DEFAULT_HUB_LISTEN}`})
  return parsed
}

/** The running hub's parts, shared by the functions below: apply replaces `state`, shutdown sets `draining`. */
interface HubCore {
  readonly addresses: Hub['addresses']
  configured: boolean
  readonly contexts: NativeContexts
  readonly credentials: Credentials
  draining: boolean
  readonly httpServers: Server[]
  readonly logger: Logger
  readonly metrics: Metrics
  /** the hub's identity name */
  readonly name: string
  readonly options: HubOptions
  readonly registry: ConnectionRegistry
  readonly server: HubServer
  state: MeshState
  readonly trustDomain: string
  /** renewal and identity-file reloads, once started */
  upkeep?: IdentityUpkeep
}

export async function runHub(options: HubOptions): Promise<Hub> {
  const core = await createHubCore(options)
  let resolveReady!: () => void
  const ready = new Promise<void>((resolve) => {
    resolveReady = resolve
  })
  let resolveClosed!: () => void
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve
  })

  await listenForAgents(core)
  const shutdown = hubShutdown(core, resolveClosed)
  try {
    await serveHubAdmin(core, shutdown)
    await followConfiguration(core, resolveReady)
  } catch (error) {
    closeTransports(core)
    throw error
  }

  core.upkeep = await keepIdentity(core.credentials, core.logger, {file: options.identityFile, renew: options.renewIdentity})
  return {addresses: core.addresses, closed, logger: core.logger, metrics: core.metrics, ready, shutdown, status: () => hubStatus(core)}
}

async function createHubCore(options: HubOptions): Promise<HubCore> {
  const {identity} = options
  const trustDomain = trustDomainOf(identity.spiffe)
  if (!trustDomain) throw new Error(`the identity's SPIFFE ID ${identity.spiffe} is not a SPIFFE ID`)
  const name = identityNameFromSpiffe(identity.spiffe, trustDomain) ?? identity.name
  const logger = await createLogger({destination: options.logDestination, level: options.logLevel ?? 'info'})
  const engine = HboneEngine.get()
  const credentials = new Credentials(identity)
  const contexts = new NativeContexts(engine, credentials)
  const metrics = new Metrics({component: 'ztctl-hub', tag: options.buildVersion ?? 'unknown'})
  const registry = new ConnectionRegistry()
  const tracker = new ConnectionTracker(registry, metrics, () => logger)
  const addresses: Hub['addresses'] = {listen: ''}
  const core: HubCore = {
    addresses, configured: false, contexts, credentials, draining: false, httpServers: [], logger, metrics, name, options, registry,
    server: new HubServer({
      advertise: () => options.advertise ?? addresses.listen, contexts, engine, keepaliveIntervalMs: options.keepaliveIntervalMs, keepaliveTimeoutMs: options.keepaliveTimeoutMs,
      logger: () => logger, metrics, registry, selfSpiffe: () => credentials.identity.spiffe, state: () => core.state, tracker,
    }),
    state: MeshState.empty({name, trustDomain}),
    trustDomain,
  }
  return core
}

async function listenForAgents(core: HubCore): Promise<void> {
  const listen = address(core.options.listen, 'listen')
  const bound = await core.server.listen(listen).catch((error: Error) => {
    core.contexts.free()
    throw new ZtError('ZT_ERR_LISTEN', `cannot listen on ${formatHostPort(listen)} for agents: ${error.message}`, {exit: ExitCode.conflict, suggestion: 'pick another --listen address (port 0 picks a free one)'})
  })
  core.addresses.listen = formatHostPort({host: bound.address, port: bound.port})
  core.logger.info({address: core.addresses.listen, component: 'hub', hub: core.name}, 'listener established')
}

function hubStatus(core: HubCore): HubDump {
  return {...core.server.status(), address: core.addresses.listen, hub: {name: core.name, spiffe: core.credentials.identity.spiffe}, ready: core.configured && !core.draining, version: core.state.version}
}

/** The admin side door (--admin): /hub_status, /metrics, /healthz/ready, /logging, /quitquitquit. */
async function serveHubAdmin(core: HubCore, shutdown: Hub['shutdown']): Promise<void> {
  const {logger, options} = core
  if (!options.admin) return
  const handlers = {
    configDump: () => hubStatus(core), getLogLevel: () => logger.level, pending: () => (core.draining ? ['draining'] : core.configured ? [] : ['configuration']),
    quit: () => void shutdown('POST /quitquitquit'), renderMetrics: () => core.metrics.render(), setLogLevel: (level: LogLevel) => (logger.level = level),
  }
  const routes = {...adminRoutes(handlers), ...metricsRoutes(handlers), ...readinessRoutes(handlers), '/hub_status': adminRoutes(handlers)['/config_dump']!}
  const at = options.admin.startsWith('unix:') ? {path: options.admin.slice(5)} : address(options.admin, 'admin')
  const served = await serveRoutes(at, routes)
  core.httpServers.push(served.server)
  core.addresses.admin = served.address
  logger.info({address: served.address, component: 'admin'}, 'listener established')
}

/** Follow the mesh's configuration (policies, identities, revocations: the hub authorizes relays with them). */
async function followConfiguration(core: HubCore, resolveReady: () => void): Promise<void> {
  const {logger, name, options} = core
  const apply = async (update: ConfigUpdate): Promise<ResourceStatus[]> => {
    core.state = new MeshState(update.snapshot, update.version, {name, trustDomain: core.trustDomain})
    if (!core.state.snapshot.identity[name]?.roles.includes(HUB_ROLE) && core.state.snapshot.identity[name]) {
      logger.warn({hub: name}, `this identity has no role "${HUB_ROLE}": agents will refuse to attach`)
    }

    core.server.enforce()
    core.configured = true
    logger.info({version: update.version}, 'configuration applied')
    resolveReady()
    return [] // a hub hosts no resource: nothing to report per resource
  }

  await options.configSource.start(apply, {
    agent: name,
    hbone: options.advertise ?? core.addresses.listen,
    identity: () => core.credentials.identity,
    onError: (message) => logger.error({error: message}, 'configuration not applied; keeping the last one'),
    onState: (sourceState, error) => (error ? logger.warn({error, state: sourceState}, 'configuration source disconnected; reconnecting') : logger.info({state: sourceState}, `configuration source ${sourceState}`)),
  })
}

/** Shutdown runs once: stop accepting, let relays drain up to the deadline, close everything, flush the log. */
function hubShutdown(core: HubCore, resolveClosed: () => void): Hub['shutdown'] {
  let shuttingDown: Promise<void> | undefined
  return async (reason = 'shutdown requested') => {
    shuttingDown ??= (async () => {
      const {logger, options, registry} = core
      core.draining = true
      core.upkeep?.stop()
      logger.info({reason, relays: registry.size}, 'draining')
      core.server.drain()
      await options.configSource.close().catch(() => {})
      if (!(await registry.drained(options.drainTimeoutMs ?? 5000))) {
        registry.closeWhere(() => true, {flag: '-', message: 'relay closed: hub shutting down (drain deadline passed)'})
      }

      closeTransports(core)
      logger.info('hub stopped')
      await new Promise<void>((resolve) => logger.flush(() => resolve()))
    })().then(resolveClosed)
    return shuttingDown
  }
}

function closeTransports(core: HubCore): void {
  core.server.destroy()
  core.contexts.free()
  for (const http of core.httpServers) {
    http.close()
    http.closeAllConnections()
  }
}

export interface LaunchHubOptions extends Omit<HubOptions, 'configSource' | 'identity' | 'renewIdentity'> {
  /** static configuration file; without it the hub follows the controller's stream */
  config?: string
  /** the controller's URL instead of the identity file's */
  controllerUrl?: string
  identityFile: string
  /** once ready, write the bound addresses here (JSON) */
  readyFile?: string
}

/** `ztctl hub run` in one call: read the identity, pick the configuration source, start, write the ready file. */
export async function launchHub(options: LaunchHubOptions): Promise<Hub> {
  const [{readIdentityFile}, {StaticConfigSource}] = await Promise.all([import('../../identity/file.js'), import('../state/config-source.js')])
  const fromFile = await readIdentityFile(options.identityFile)
  const identity = {...fromFile, controller: options.controllerUrl ?? fromFile.controller}
  const configSource: ConfigSource = options.config
    ? new StaticConfigSource(options.config)
    : new (await import('../state/config-source-controller.js')).ControllerConfigSource(identity)
  const hub = await runHub({
    ...options, configSource, identity,
    renewIdentity: options.config ? undefined : (await import('../../client/renew.js')).renewIdentity,
  })
  if (options.readyFile) {
    const file = options.readyFile
    const {writeFileAtomic} = await import('../../home/home.js')
    void hub.ready.then(async () => {
      await writeFileAtomic(file, JSON.stringify({addresses: hub.addresses, identity: identity.name, pid: process.pid, spiffe: identity.spiffe}, null, 2) + '\n', 0o644)
      hub.logger.info({file}, 'ready file written')
    }).catch((error: Error) => hub.logger.error({error: error.message, file}, 'cannot write the ready file'))
  }

  return hub
}

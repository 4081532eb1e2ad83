// The hub's lifecycle (`ztctl hub run`, or embedded by `controller run --hub`): follow the mesh's
// configuration (policies, identities, revocations: the hub authorizes relays with them), listen for
// agents on the native engine, serve /hub_status, /metrics, /healthz/ready on an admin side door, renew
// the certificate at half-life, and on shutdown stop accepting, let relays drain up to a deadline, close.
import type {Server} from 'node:http'

import type {CertificateRenewer} from '../../client/renew.js'
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
import {startRenewal} from './renewal.js'

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

export async function runHub(options: HubOptions): Promise<Hub> {
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
  let state = MeshState.empty({name, trustDomain})
  const addresses: Hub['addresses'] = {listen: ''}
  const server = new HubServer({
    advertise: () => options.advertise ?? addresses.listen, contexts, engine, keepaliveIntervalMs: options.keepaliveIntervalMs, keepaliveTimeoutMs: options.keepaliveTimeoutMs,
    logger: () => logger, metrics, registry, selfSpiffe: () => credentials.identity.spiffe, state: () => state, tracker,
  })
  let configured = false
  let draining = false
  let resolveReady!: () => void
  const ready = new Promise<void>((resolve) => {
    resolveReady = resolve
  })
  let resolveClosed!: () => void
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve
  })

  const listen = address(options.listen, 'listen')
  const bound = await server.listen(listen).catch((error: Error) => {
    contexts.free()
    throw new ZtError('ZT_ERR_LISTEN', `cannot listen on ${formatHostPort(listen)} for agents: ${error.message}`, {exit: ExitCode.conflict, suggestion: 'pick another --listen address (port 0 picks a free one)'})
  })
  addresses.listen = formatHostPort({host: bound.address, port: bound.port})
  logger.info({address: addresses.listen, component: 'hub', hub: name}, 'listener established')

  const status = (): HubDump => ({...server.status(), address: addresses.listen, hub: {name, spiffe: credentials.identity.spiffe}, ready: configured && !draining, version: state.version})
  const apply = async (update: ConfigUpdate): Promise<ResourceStatus[]> => {
    state = new MeshState(update.snapshot, update.version, {name, trustDomain})
    if (!state.snapshot.identity[name]?.roles.includes(HUB_ROLE) && state.snapshot.identity[name]) {
      logger.warn({hub: name}, `this identity has no role "${HUB_ROLE}": agents will refuse to attach`)
    }

    server.enforce()
    configured = true
    logger.info({version: update.version}, 'configuration applied')
    resolveReady()
    return [] // a hub hosts no resource: nothing to report per resource
  }

  let shuttingDown: Promise<void> | undefined
  const httpServers: Server[] = []
  let renewer: CertificateRenewer | undefined
  const shutdown = async (reason = 'shutdown requested'): Promise<void> => {
    shuttingDown ??= (async () => {
      draining = true
      renewer?.stop()
      logger.info({reason, relays: registry.size}, 'draining')
      server.drain()
      await options.configSource.close().catch(() => {})
      if (!(await registry.drained(options.drainTimeoutMs ?? 5000))) {
        registry.closeWhere(() => true, {flag: '-', message: 'relay closed: hub shutting down (drain deadline passed)'})
      }

      server.destroy()
      contexts.free()
      for (const http of httpServers) {
        http.close()
        http.closeAllConnections()
      }

      logger.info('hub stopped')
      await new Promise<void>((resolve) => logger.flush(() => resolve()))
    })().then(resolveClosed)
    return shuttingDown
  }

  try {
    if (options.admin) {
      const handlers = {
        configDump: status, getLogLevel: () => logger.level, pending: () => (draining ? ['draining'] : configured ? [] : ['configuration']),
        quit: () => void shutdown('POST /quitquitquit'), renderMetrics: () => metrics.render(), setLogLevel: (level: LogLevel) => (logger.level = level),
      }
      const routes = {...adminRoutes(handlers), ...metricsRoutes(handlers), ...readinessRoutes(handlers), '/hub_status': adminRoutes(handlers)['/config_dump']!}
      const at = options.admin.startsWith('unix:') ? {path: options.admin.slice(5)} : address(options.admin, 'admin')
      const served = await serveRoutes(at, routes)
      httpServers.push(served.server)
      addresses.admin = served.address
      logger.info({address: served.address, component: 'admin'}, 'listener established')
    }

    await options.configSource.start(apply, {
      agent: name,
      hbone: options.advertise ?? addresses.listen,
      identity: () => credentials.identity,
      onError: (message) => logger.error({error: message}, 'configuration not applied; keeping the last one'),
      onState: (sourceState, error) => (error ? logger.warn({error, state: sourceState}, 'configuration source disconnected; reconnecting') : logger.info({state: sourceState}, `configuration source ${sourceState}`)),
    })
  } catch (error) {
    server.destroy()
    contexts.free()
    for (const http of httpServers) http.close()
    throw error
  }

  if (options.renewIdentity) renewer = startRenewal(credentials, logger, {file: options.identityFile, renew: options.renewIdentity})

  return {addresses, closed, logger, metrics, ready, shutdown, status}
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

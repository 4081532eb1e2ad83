// The agent's lifecycle: start every listener (HBONE, admin, readiness, metrics), apply each
// configuration live (inbound listeners, policy re-checks, revocations), attach to its hubs once the
// first configuration says who they are, renew the certificate at half-life, and on shutdown stop
// accepting, drain up to a deadline, then close everything. With noListen it opens no TCP listener at
// all: it is reached through its hubs, its admin side door is a Unix socket.
import type {Server} from 'node:http'
import type {Duplex} from 'node:stream'

import type {AppHost} from '../../apps/host/host.js'
import type {FileStatus} from '../../apps/host/file-catalog.js'
import type {CertificateStorage} from '../../client/renew.js'
import {APP_NAMES, type AppName, type HubAttachment, type IdentitySummary, MAX_STATUS_REASON, type Policy, resourceKey, type ResourceStatus, type Revocation} from '../../config/types.js'
import {describeSystemError, ExitCode, ZtError} from '../../errors.js'
import type {IdentityFile} from '../../identity/file.js'
import type {InpodRuntime} from '../../inpod/runtime.js'
import {certInfo, splitPem, trustDomainOf} from '../../pki/cert-info.js'
import type {SidecarHooks} from '../../sidecar/sidecar.js'
import {formatHostPort, type HostPort, parseHostPort} from '../address.js'
import type {PoolSessionInfo} from '../hbone/pool-sessions.js'
import {H2_CONNECTION_WINDOW, H2_STREAM_WINDOW} from '../hbone/relay.js'
import {Credentials} from '../hbone/tls.js'
import {type AdminHandlers, adminRoutes, metricsRoutes, readinessRoutes, serveRoutes} from '../observe/admin.js'
import {createLogger, type Logger, type LogLevel} from '../observe/log.js'
import {LogRing} from '../observe/log-ring.js'
import {processMetrics} from '../observe/process-metrics.js'
import {Metrics} from '../observe/metrics.js'
import {type ConnectionSnapshot, ConnectionRegistry} from '../observe/registry.js'
import type {AppStreamSession} from '../paths/app-streams.js'
import {ConnectionTracker} from '../paths/connection.js'
import {ProxyEntry, type ProxyListenerInfo} from '../paths/proxy-entry.js'
import {type InboundListenerInfo, InboundTunnels} from '../paths/tunnel-inbound.js'
import type {PeerCertificateInfo} from '../hbone/hbone-engine.js'
import {HUB_ROLE} from '../hbone/hub-links.js'
import {isAppService} from '../state/apps.js'
import {identityNameFromSpiffe} from '../state/authz.js'
import type {ConfigSource, ConfigSourceStatus, ConfigUpdate} from '../state/config-source.js'
import {MeshState, type SelfInfo} from '../state/state.js'
import {buildDataPath, type DataPath, type DataPathChoice, type DataPathTiming, MAX_STREAMS_PER_SESSION, type TrafficContext} from './data-path.js'
import {startIdleTrim} from './idle-trim.js'
import {type IdentityUpkeep, keepIdentity} from './renewal.js'

export type {DataPathChoice} from './data-path.js'

export interface AgentOptions {
  /** the address other agents dial; default: the bound HBONE address with 0.0.0.0/:: → 127.0.0.1 */
  advertise?: string
  /** admin listener (`host:port`); undefined: none */
  admin?: string
  buildVersion?: string
  configSource: ConfigSource
  /**
   * who moves the bytes: `native` (the C data path, hbone-engine.ts), `node` (node:http2 + node:net),
   * or `auto` (native when its addon loads, else node with a warning). Default auto.
   */
  dataPath?: DataPathChoice
  drainTimeoutMs?: number
  hbone: string
  /** `[NAME@]HOST:PORT` of hubs to attach to (native data path) */
  hubs?: string[]
  identity: IdentityFile
  /** in-pod data path (`--inpod-socket`): serve the CNI socket and the workloads' listeners */
  inpod?: {
    socketPath: string; stateDir: string; issueCert?: import('../../inpod/certs.js').IssueWorkloadCert
    /** false: the controller publishes this node's workloads itself (on Kubernetes, from its pod informer); default true */
    publish?: boolean
    /** node: the pods' bytes on node:http2 + node:net even when the agent's data path is native (default: the agent's) */
    dataPath?: 'native' | 'node'
  }
  /** sidecar mode (`--mode proxy|tproxy`): local binds or interception for the services it may dial */
  sidecar?: import('../../sidecar/sidecar.js').SidecarOptions
  /** the file IDENTITY came from: watched for a new certificate put there (a Secret volume's update), rewritten after each renewal when writable */
  identityFile?: string
  /** after this long without a connection, trim memory once (src/lib/proxy/daemon/idle-trim.ts); undefined: never */
  idleTrimMs?: number
  logDestination?: NodeJS.WritableStream
  logLevel?: LogLevel
  metrics?: string
  /**
   * open no TCP listener: no HBONE port (the agent is reached through its hubs and advertises no
   * address), no metrics or readiness port; admin (`unix:PATH`) serves /metrics and /healthz/ready too
   */
  noListen?: boolean
  readiness?: string
  /** Renew the certificate at half-life with this (the controller's /v1/renew); undefined: never renew. */
  renewIdentity?: (identity: IdentityFile) => Promise<IdentityFile>
  /** pool and server timers; tests shorten them */
  timing?: DataPathTiming
}

export interface AgentAddresses {
  admin?: string
  advertise: string
  hbone: string
  /** inbound tunnel key (`tcp/NAME@AGENT`) → bound address */
  inbound: Record<string, string>
  metrics?: string
  readiness?: string
}

/** An app of this agent as /config_dump shows it (`proxy-config apps`). */
export interface AppDump {
  allow: string[]
  anyCommand?: boolean
  app: AppName
  commands?: string[]
  enabled: boolean
  scriptDir?: string
  /** sessions open now */
  sessions: number
  shell?: string[]
}

export interface CertificateDump {
  certChain: {expirationTime: string; pem: string; serialNumber: string; validFrom: string}[]
  identity: string
  rootCerts: {expirationTime: string; pem: string; serialNumber: string; validFrom: string}[]
  state: 'Available' | 'Expired'
  /** where the leaf lives: the identity file, or this process only (a renewal the file could not take) */
  storage: CertificateStorage
}

/** GET /config_dump (ztunnel's keys where they apply; see docs/hbone.md "Admin"). */
export interface ConfigDump {
  agent: {name: string; spiffe: string; trustDomain: string}
  /** every app, on or off */
  apps: AppDump[]
  build: {node: string; version: string}
  certificates: CertificateDump[]
  config: {
    addresses: AgentAddresses
    /** the data path in use */
    dataPath: 'native' | 'node'
    /** the in-pod data path's (with --inpod-socket) */
    inpodDataPath?: 'native' | 'node'
    drainTimeoutMs: number
    h2: {connectionWindow: number; maxStreamsPerSession: number; streamWindow: number}
    source: ConfigSourceStatus & {kind: string}
  }
  connections: ConnectionSnapshot[]
  /** the files this agent publishes, with their last known size and SHA-256 (or why they cannot be read) */
  files: FileStatus[]
  /** this agent's hub attachments (`--hub`) */
  hubs: HubAttachment[]
  identities: IdentitySummary[]
  inbound: InboundListenerInfo[]
  policies: Policy[]
  pool: PoolSessionInfo[]
  /** the proxy listener (`ztctl proxy open`), when this agent has one */
  proxy?: ProxyListenerInfo
  ready: boolean
  pending: string[]
  revocations: Revocation[]
  /** mesh services (endpoints: outbound tunnels) and Kubernetes Services (name `namespace/name`, `vips` = ClusterIP:port, endpoints: their pods) */
  services: {allow?: string[]; endpoints: {agent: string; hbone: string; target: string; weight: number}[]; hostedHere: boolean; name: string; vips?: string[]}[]
  version: number
  /** agents (node-level entries) and, with namespace/ips/node, the pods node agents publish */
  /** pods this agent serves in-pod also carry `connections`: the open connections they are an end of */
  workloads: {connections?: number; hbone: string; ips?: string[]; name: string; namespace?: string; node?: string; protocol: 'HBONE'; self: boolean; spiffe: string}[]
}

export interface Agent {
  readonly addresses: AgentAddresses
  /** Apply each resource on its own; resolves with the status of the ones this agent acts on or could not apply. */
  applyConfig(update: ConfigUpdate): Promise<ResourceStatus[]>
  /** resolves once the agent has stopped (shutdown, /quitquitquit) */
  readonly closed: Promise<void>
  configDump(): ConfigDump
  readonly logger: Logger
  readonly metrics: Metrics
  /** resolves once the first configuration is applied and every listener is up */
  readonly ready: Promise<void>
  /** Stop accepting, drain open connections up to the deadline, close. Idempotent. */
  shutdown(reason?: string): Promise<void>
}

/** The running agent's parts, shared by the functions below: applyConfig replaces `state`, shutdown sets `draining`, startup fills in the optional parts. */
interface AgentCore {
  readonly addresses: AgentAddresses
  /** the app host, from the first configuration that enables an app on this agent */
  apps?: AppHost
  configured: boolean
  readonly credentials: Credentials
  draining: boolean
  readonly drainTimeoutMs: number
  readonly httpServers: Server[]
  inpod?: InpodRuntime
  readonly logger: Logger
  /** the recent log lines, for GET /logs */
  readonly logRing: LogRing
  readonly metrics: Metrics
  readonly options: AgentOptions
  readonly registry: ConnectionRegistry
  /** renewal and identity-file reloads */
  upkeep?: IdentityUpkeep
  readonly self: SelfInfo
  sidecar?: SidecarHooks
  state: MeshState
  readonly tracker: ConnectionTracker
}

/** The core once its data path and inbound tunnels exist. */
interface RunningAgent extends AgentCore {
  readonly data: DataPath
  readonly inbound: InboundTunnels
  /** the SOCKS5/HTTP proxy listener (native data path) */
  readonly proxy?: ProxyEntry
}

function listenAddress(text: string, what: string): HostPort {
  const address = parseHostPort(text, '0.0.0.0')
  if (!address) {
    throw new ZtError('ZT_ERR_USAGE', `--${what} ${JSON.stringify(text)} is not HOST:PORT`, {exit: ExitCode.usage, suggestion: `e.g. --${what} 127.0.0.1:0`})
  }

  return address
}

async function listenOrExplain<T>(what: string, address: HostPort | {path: string}, start: () => Promise<T>): Promise<T> {
  try {
    return await start()
  } catch (error) {
    throw new ZtError('ZT_ERR_LISTEN', `cannot listen on ${'path' in address ? address.path : formatHostPort(address)} for ${what}: ${describeSystemError(error)}`, {
      cause: error,
      exit: ExitCode.conflict,
      suggestion: `pick another --${what} address (port 0 picks a free one)`,
    })
  }
}

function certDump(pem: string): CertificateDump['certChain'][number] {
  const info = certInfo(pem)
  return {expirationTime: info.notAfter.toISOString(), pem: Buffer.from(pem).toString('base64'), serialNumber: info.serial, validFrom: info.notBefore.toISOString()}
}

export async function runAgent(options: AgentOptions): Promise<Agent> {
  const core = await createCore(options)
  const agent = await withDataPath(core, options.dataPath ?? 'auto')
  let resolveClosed!: () => void
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve
  })
  let resolveReady!: () => void
  const ready = new Promise<void>((resolve) => {
    resolveReady = resolve
  })

  await listenHbone(agent)
  const applyConfig = configApplier(agent, resolveReady)
  const configDump = (): ConfigDump => dumpConfig(agent)
  const shutdown = shutdownOnce(agent, resolveClosed)
  await startServices(agent, {applyConfig, configDump, shutdown})
  agent.upkeep = await keepIdentity(agent.credentials, agent.logger, {file: options.identityFile, renew: options.renewIdentity})
  if (options.idleTrimMs) startIdleTrim({closed, idleMs: options.idleTrimMs, logger: agent.logger, source: agent.registry})
  return {
    addresses: agent.addresses,
    applyConfig,
    closed,
    configDump,
    logger: agent.logger,
    metrics: agent.metrics,
    ready,
    shutdown,
  }
}

async function createCore(options: AgentOptions): Promise<AgentCore> {
  const logRing = new LogRing()
  const logger = await createLogger({destination: options.logDestination, level: options.logLevel ?? 'info', tee: (destination) => logRing.tee(destination)})
  const credentials = new Credentials(options.identity)
  const trustDomain = trustDomainOf(options.identity.spiffe)
  if (!trustDomain) throw new Error(`the identity's SPIFFE ID ${options.identity.spiffe} is not a SPIFFE ID`)
  const self = {name: options.identity.name, trustDomain}
  const state = MeshState.empty(self)
  const metrics = new Metrics({component: 'ztctl-agent', tag: options.buildVersion ?? 'unknown'})
  const registry = new ConnectionRegistry()
  const tracker = new ConnectionTracker(registry, metrics, () => logger)
  return {
    addresses: {advertise: '', hbone: '', inbound: {}},
    configured: false,
    credentials,
    draining: false,
    drainTimeoutMs: options.drainTimeoutMs ?? 5000,
    httpServers: [],
    logger,
    logRing,
    metrics,
    options,
    registry,
    self,
    state,
    tracker,
  }
}

/** Choose the engine, build the HBONE pool and server on it, and the inbound tunnels that dial through the pool. */
async function withDataPath(core: AgentCore, choice: DataPathChoice): Promise<RunningAgent> {
  const timing = core.options.timing ?? {}
  const sourceSpiffe = (): string => core.credentials.identity.spiffe
  const serveApp = (stream: Duplex, session: AppStreamSession) => core.apps!.serve(stream, session)
  const common: TrafficContext = {apps: () => (core.apps ? serveApp : undefined), logger: () => core.logger, metrics: core.metrics, state: () => core.state, tracker: core.tracker, ...timing}
  const data = await buildDataPath(choice, {
    advertise: () => core.addresses.advertise,
    common,
    credentials: core.credentials,
    hubs: core.options.hubs && {
      addresses: core.options.hubs,
      isHub: (peer, pinnedName) => hubIdentity(core.state, peer, pinnedName),
      onChange: (hubs) => core.options.configSource.send?.({hubs, type: 'hubs'}),
      selfName: core.self.name,
    },
    isRevoked: (serial) => core.state.isRevoked(serial),
    logger: core.logger,
    sourceSpiffe,
    timing,
  })
  const hubConnected = (): boolean => data.hubs?.anyConnected() ?? false
  const proxy = data.client.kind === 'native' ? new ProxyEntry({...common, engine: data.client.engine, hubConnected, pool: data.client.pool, sourceSpiffe}) : undefined
  // Object.assign keeps one object: the closures above read the state applyConfig replaces.
  return Object.assign(core, {data, inbound: new InboundTunnels({...common, dataPath: data.client, hubConnected, sourceSpiffe}), proxy})
}

/** The hub's identity name when PEER is an unrevoked identity with role `hub` (and named PINNED, if given). */
function hubIdentity(state: MeshState, peer: PeerCertificateInfo, pinned?: string): string | undefined {
  const name = identityNameFromSpiffe(peer.spiffe, state.self.trustDomain)
  if (!name || state.isRevoked(peer.serial) || (pinned && pinned !== name)) return undefined
  return state.snapshot.identity[name]?.roles.includes(HUB_ROLE) ? name : undefined
}

async function listenHbone(agent: RunningAgent): Promise<void> {
  const {addresses, options} = agent
  if (options.noListen) {
    agent.logger.info({component: 'hbone', hubs: options.hubs ?? []}, 'no HBONE listener (--no-listen): reached through hubs only')
    return
  }

  const hboneAddress = listenAddress(options.hbone, 'hbone')
  const bound = await listenOrExplain('hbone', hboneAddress, () => agent.data.server.listen(hboneAddress))
  addresses.hbone = formatHostPort({host: bound.address, port: bound.port})
  addresses.advertise = options.advertise ?? formatHostPort({host: ['0.0.0.0', '::'].includes(bound.address) ? '127.0.0.1' : bound.address, port: bound.port})
  agent.logger.info({address: addresses.hbone, advertise: addresses.advertise, component: 'hbone'}, 'listener established')
}

/** What readiness still waits for; empty once ready. */
function pending(agent: RunningAgent): string[] {
  if (agent.draining) return ['draining']
  const waiting: string[] = []
  if (!agent.configured) waiting.push('configuration')
  const failed = agent.inbound.list().filter((listener) => listener.error)
  if (failed.length > 0) waiting.push(...failed.map((listener) => `listener ${listener.key}`))
  if (agent.proxy?.status()?.error) waiting.push('proxy listener')
  return waiting
}

/** How often listeners that could not bind (a port held by another process) are tried again. */
const LISTENER_RETRY_MS = 2000

/**
 * Configurations apply one at a time, in the order they arrive; while a listener cannot bind, it is
 * tried again every LISTENER_RETRY_MS, and a change of status is reported to the source (a re-ack).
 */
function configApplier(agent: RunningAgent, resolveReady: () => void): (update: ConfigUpdate) => Promise<ResourceStatus[]> {
  let applying: Promise<unknown> = Promise.resolve()
  const serial = <T>(step: () => Promise<T>): Promise<T> => {
    const run = applying.then(step)
    applying = run.catch(() => {})
    return run
  }

  let reported = ''
  const retry = setInterval(() => {
    if (agent.draining) clearInterval(retry)
    if (!agent.inbound.failing || agent.draining) return
    void serial(async () => {
      await bindListeners(agent, agent.state)
      const statuses = resourceStatuses(agent, agent.state)
      if (JSON.stringify(statuses) === reported) return
      reported = JSON.stringify(statuses)
      agent.options.configSource.report(statuses)
      if (pending(agent).length === 0) resolveReady()
    })
  }, LISTENER_RETRY_MS)
  retry.unref()
  return (update) => serial(async () => {
    const statuses = await applyOne(agent, update, resolveReady)
    reported = JSON.stringify(statuses)
    return statuses
  })
}

/** Open, re-bind or close the inbound listeners (with the sidecar's) for STATE; keep the bound addresses. */
async function bindListeners(agent: RunningAgent, state: MeshState): Promise<void> {
  const {addresses, inbound} = agent
  if (!agent.draining) await inbound.apply([...state.inboundTunnels(), ...(agent.sidecar?.listeners(state) ?? [])])
  if (!agent.draining) await agent.proxy?.apply(state.proxyListener())
  for (const listener of inbound.list()) if (listener.address) addresses.inbound[listener.key] = listener.address
  for (const key of Object.keys(addresses.inbound)) if (!inbound.list().some((listener) => listener.key === key && listener.address)) delete addresses.inbound[key]
}

/** The status of each tunnel of this agent (inbound: is its listener bound; outbound: hosted). */
function resourceStatuses(agent: RunningAgent, state: MeshState): ResourceStatus[] {
  const listeners = new Map(agent.inbound.list().map((listener) => [listener.key, listener]))
  const inbound = state.inboundTunnels().map((tunnel): ResourceStatus => {
    const key = resourceKey('inbound', tunnel)
    const listener = listeners.get(key)
    return listener?.error
      ? {code: listener.errorCode, key, kind: 'inbound', reason: listener.error.slice(0, MAX_STATUS_REASON), state: 'error'}
      : {key, kind: 'inbound', state: 'applied'}
  })
  const outbound = state.hostedTunnels().filter((tunnel) => !isAppService(tunnel.service))
    .map((tunnel): ResourceStatus => ({key: resourceKey('outbound', tunnel), kind: 'outbound', state: 'applied'}))
  return [...inbound, ...outbound, ...appStatuses(agent, state), ...proxyStatuses(agent, state)]
}

/** This agent's apps, and the files it publishes (one it cannot read is an error status saying why). */
function appStatuses(agent: RunningAgent, state: MeshState): ResourceStatus[] {
  const own = <T extends {agent: string}>(table: Record<string, T>): [string, T][] => Object.entries(table).filter(([, value]) => value.agent === state.self.name)
  const apps = own(state.snapshot.app).map(([key]): ResourceStatus => ({key, kind: 'app', state: 'applied'}))
  const files = own(state.snapshot.file).map(([key, file]): ResourceStatus => {
    const problem = agent.apps?.fileProblem(file.name)
    return problem ? {code: 'ZT_ERR_FILE_UNAVAILABLE', key, kind: 'file', reason: problem.slice(0, MAX_STATUS_REASON), state: 'error'} : {key, kind: 'file', state: 'applied'}
  })
  return [...apps, ...files]
}

/** The proxy listener (bound, or why not) and the exit of this agent. */
function proxyStatuses(agent: RunningAgent, state: MeshState): ResourceStatus[] {
  const statuses: ResourceStatus[] = []
  const key = agent.self.name
  if (state.proxyListener()) {
    const problem = agent.proxy ? agent.proxy.status()?.error : 'the proxy listener needs the native data path (--data-path native)'
    statuses.push(problem ? {key, kind: 'proxy', reason: problem.slice(0, MAX_STATUS_REASON), state: 'error'} : {key, kind: 'proxy', state: 'applied'})
  }

  if (state.snapshot.exit?.[key]) statuses.push({key, kind: 'exit', state: 'applied'})
  return statuses
}

/** The new mesh view, the inbound listeners, re-checks of live connections, then the in-pod workloads. */
async function applyOne(agent: RunningAgent, update: ConfigUpdate, resolveReady: () => void): Promise<ResourceStatus[]> {
  const next = new MeshState(update.snapshot, update.version, agent.self)
  if (!agent.apps && APP_NAMES.some((app) => next.app(app))) agent.apps = await startAppHost(agent)
  const previous = agent.state
  agent.state = next
  await agent.apps?.configure()
  await bindListeners(agent, next)
  if (!agent.draining) await agent.sidecar?.applied(next, agent.addresses.inbound)
  enforce(agent, previous, next)
  agent.inpod?.applyConfig(next)
  agent.configured = true
  // Hubs are pinned by their role in the configuration: attach once there is one.
  if (!agent.draining) agent.data.hubs?.start()
  const statuses = resourceStatuses(agent, next)
  const errors = statuses.filter((status) => status.state === 'error').length
  agent.logger.info({version: update.version, inbound: next.inboundTunnels().length, hosted: next.hostedTunnels().length, errors}, 'configuration applied')
  if (pending(agent).length === 0) resolveReady()
  return statuses
}

/** Re-check live connections against a new configuration: revoked peers and policy changes. */
function enforce(agent: RunningAgent, previous: MeshState, next: MeshState): void {
  const {registry} = agent
  const revoked = (serial: string | undefined): boolean => next.isRevoked(serial) && !previous.isRevoked(serial)
  const revokedCount = registry.closeWhere((record) => revoked(record.peerSerial), {flag: 'CERT_REVOKED', message: 'connection closed: peer certificate revoked'})
  agent.data.client.pool.closeWhere((session) => next.isRevoked(session.peerSerial))
  agent.data.server.closeSessionsWhere((peer) => next.isRevoked(peer.serial))
  const deniedCount = registry.closeWhere((record) => {
    if (record.direction !== 'inbound') return false
    const target = parseHostPort(record.hboneTarget)
    if (!target) return false
    const tunnel = next.hostedTunnel(target, record.service)
    if (!tunnel && isAppService(record.service)) return true // the app was switched off
    const [sourceAddress] = splitHostPort(record.sourceAddress)
    return !next.authorize({destinationPort: target.port, service: record.service, sourceAddress, sourceSpiffe: record.sourceSpiffe}, tunnel).allowed
  }, {flag: 'DENY', message: 'connection closed due to policy change'})
  if (revokedCount + deniedCount > 0) agent.logger.info({revoked: revokedCount, denied: deniedCount}, 'closed live connections after a configuration change')
}

function dumpConfig(agent: RunningAgent): ConfigDump {
  const {credentials, options, self, state} = agent
  const {snapshot} = state
  const identity = credentials.identity
  const leaf = credentials.certificate
  return {
    agent: {name: self.name, spiffe: identity.spiffe, trustDomain: self.trustDomain},
    apps: appsDump(agent),
    build: {node: process.version, version: options.buildVersion ?? 'unknown'},
    certificates: [{
      certChain: splitPem(identity.cert).map((pem) => certDump(pem)),
      identity: identity.spiffe,
      rootCerts: splitPem(identity.ca).map((pem) => certDump(pem)),
      state: leaf.notAfter.getTime() > Date.now() ? 'Available' : 'Expired',
      storage: agent.upkeep?.storage ?? (options.identityFile ? 'file' : 'memory'),
    }],
    config: {
      addresses: structuredClone(agent.addresses),
      dataPath: agent.data.client.kind,
      inpodDataPath: agent.inpod?.dataPath,
      drainTimeoutMs: agent.drainTimeoutMs,
      h2: {connectionWindow: H2_CONNECTION_WINDOW, maxStreamsPerSession: MAX_STREAMS_PER_SESSION, streamWindow: H2_STREAM_WINDOW},
      source: {...options.configSource.status(), kind: options.configSource.kind},
    },
    connections: agent.registry.list(),
    files: agent.apps?.dump().files ?? state.publishedFiles().map(({name, path}) => ({name, path})),
    hubs: agent.data.hubs?.attachments() ?? [],
    identities: Object.values(snapshot.identity),
    inbound: agent.inbound.list(),
    pending: pending(agent),
    policies: Object.values(snapshot.policy),
    pool: agent.data.client.pool.list(),
    proxy: agent.proxy?.status(),
    ready: pending(agent).length === 0,
    revocations: Object.values(snapshot.revocation),
    services: servicesDump(state),
    version: state.version,
    workloads: workloadsDump(state, self, new Map(agent.inpod?.list().map((pod) => [pod.uid, pod.connections]))),
  }
}

function appsDump(agent: RunningAgent): AppDump[] {
  const sessions = agent.apps?.dump().sessions
  return APP_NAMES.map((name) => {
    const config = agent.state.app(name)
    if (!config) return {allow: [], app: name, enabled: false, sessions: 0}
    const {agent: _agent, app, ...settings} = config
    return {...settings, app, enabled: true, sessions: sessions?.[app] ?? 0}
  })
}

/** The app host, loaded when the first app is switched on (the agent without apps never loads it). */
async function startAppHost(agent: RunningAgent): Promise<AppHost> {
  const {AppHost: Host} = await import('../../apps/host/host.js')
  return new Host({agent: agent.self.name, logger: () => agent.logger, state: () => agent.state})
}

function servicesDump(state: MeshState): ConfigDump['services'] {
  const serviceNames = [...new Set(Object.values(state.snapshot.outbound).map((tunnel) => tunnel.service))].sort()
  const tunnels = serviceNames.map((name) => {
    const hosted = state.hostedTunnels().find((tunnel) => tunnel.service === name)
    return {allow: hosted?.allow, endpoints: state.endpoints(name).map(({agent, hbone, target, weight}) => ({agent, hbone, target, weight})), hostedHere: Boolean(hosted), name}
  })
  return [...tunnels, ...kubernetesServicesDump(state)]
}

/** The Kubernetes Services the workloads back, each with its ClusterIP:ports and endpoint pods (pod IP:target port). */
function kubernetesServicesDump(state: MeshState): ConfigDump['services'] {
  const services = new Map<string, {endpoints: ConfigDump['services'][number]['endpoints']; vips: Set<string>}>()
  for (const pod of Object.values(state.snapshot.workload ?? {})) {
    const ip = pod.ips[0]
    for (const service of pod.services ?? []) {
      const entry = services.get(service.name) ?? {endpoints: [], vips: new Set<string>()}
      for (const {port, targetPort} of service.ports) {
        for (const vip of service.vips) entry.vips.add(formatHostPort({host: vip, port}))
        if (ip) entry.endpoints.push({agent: pod.node, hbone: formatHostPort({host: ip, port: 15_008}), target: formatHostPort({host: ip, port: targetPort}), weight: 1})
      }

      services.set(service.name, entry)
    }
  }

  return [...services].sort(([a], [b]) => a.localeCompare(b)).map(([name, {endpoints, vips}]) => ({endpoints, hostedHere: false, name, vips: [...vips].sort()}))
}

function workloadsDump(state: MeshState, self: SelfInfo, served: ReadonlyMap<string, number>): ConfigDump['workloads'] {
  const {snapshot} = state
  return [
    ...Object.values(snapshot.agent).map((agent) => ({hbone: agent.hbone, name: agent.name, protocol: 'HBONE' as const, self: agent.name === self.name, spiffe: agent.spiffe})),
    ...Object.values(snapshot.workload ?? {}).map((pod) => ({
      connections: served.get(pod.uid), hbone: pod.hbone, ips: pod.ips, name: pod.name, namespace: pod.namespace, node: pod.node, protocol: 'HBONE' as const, self: pod.node === self.name,
      spiffe: `spiffe://${self.trustDomain}/ns/${pod.namespace}/sa/${pod.serviceAccount}`,
    })),
  ]
}

/** Shutdown runs once; every later call returns the same promise. */
function shutdownOnce(agent: RunningAgent, resolveClosed: () => void): (reason?: string) => Promise<void> {
  let shuttingDown: Promise<void> | undefined
  return async (reason = 'shutdown requested') => {
    shuttingDown ??= drainAndClose(agent, reason).then(resolveClosed)
    return shuttingDown
  }
}

/** Stop accepting, drain open connections up to the deadline (then close the rest), close every transport, flush the log. */
async function drainAndClose(agent: RunningAgent, reason: string): Promise<void> {
  const {logger, registry} = agent
  await stopAccepting(agent, reason)
  const drained = await registry.drained(agent.drainTimeoutMs)
  if (!drained) {
    logger.warn({connections: registry.size}, 'drain duration expired with pending connections, forcefully shutting down')
    registry.closeWhere(() => true, {flag: '-', message: 'connection closed: agent shutting down (drain deadline passed)'})
  }

  agent.data.hubs?.close()
  agent.data.client.pool.destroy()
  agent.data.server.destroy()
  agent.data.contexts?.free()
  for (const server of agent.httpServers) {
    server.close()
    server.closeAllConnections()
  }

  logger.info('agent stopped')
  await new Promise<void>((resolve) => {
    logger.flush(() => resolve())
  })
}

async function stopAccepting(agent: RunningAgent, reason: string): Promise<void> {
  const {logger} = agent
  agent.draining = true
  agent.upkeep?.stop()
  logger.info({reason, connections: agent.registry.size, deadlineMs: agent.drainTimeoutMs}, 'draining')
  agent.data.server.drain()
  agent.inbound.close()
  agent.proxy?.close()
  agent.inpod?.close()
  await agent.sidecar?.close().catch((error: Error) => logger.error({error: error.message}, 'sidecar cleanup failed'))
  await agent.options.configSource.close().catch(() => {})
}

/**
 * Start, in order, the admin/metrics/readiness listeners, the sidecar, the configuration source and the
 * in-pod runtime; when one fails, close what started (the HBONE listener included) and rethrow.
 */
async function startServices(agent: RunningAgent, api: Pick<Agent, 'applyConfig' | 'configDump' | 'shutdown'>): Promise<void> {
  const {options} = agent
  try {
    await serveHttp(agent, {
      configDump: api.configDump,
      getLogLevel: () => agent.logger.level,
      logs: agent.logRing,
      pending: () => pending(agent),
      quit: () => void api.shutdown('POST /quitquitquit'),
      renderMetrics: () => agent.metrics.render() + processMetrics().render() + (agent.apps?.renderMetrics() ?? ''),
      setLogLevel: (level: LogLevel) => {
        agent.logger.level = level
      },
    })
    if (options.sidecar) {
      const {startSidecar} = await import('../../sidecar/sidecar.js')
      agent.sidecar = await startSidecar(options.sidecar, () => agent.logger)
    }

    await startConfigSource(agent, api.applyConfig)
    if (options.inpod) await startInpodRuntime(agent, options.inpod)
  } catch (error) {
    agent.data.server.destroy()
    agent.inpod?.close()
    await agent.sidecar?.close().catch(() => {})
    for (const server of agent.httpServers) server.close()
    throw error
  }
}

async function serveHttp(agent: RunningAgent, handlers: AdminHandlers): Promise<void> {
  // The event-loop lag is measured from now on, not from the first scrape.
  if (agent.options.metrics !== undefined) processMetrics()
  const {addresses, options} = agent
  // No TCP port with noListen: metrics and readiness are served on the admin socket instead.
  const admin = options.noListen ? {...adminRoutes(handlers), ...metricsRoutes(handlers), ...readinessRoutes(handlers)} : adminRoutes(handlers)
  for (const [what, text, routes] of [
    ['admin', options.admin, admin],
    ['metrics', options.noListen ? undefined : options.metrics, metricsRoutes(handlers)],
    ['readiness', options.noListen ? undefined : options.readiness, readinessRoutes(handlers)],
  ] as const) {
    if (text === undefined) continue
    const address = text.startsWith('unix:') ? {path: text.slice(5)} : listenAddress(text, what)
    if (options.noListen && !('path' in address)) {
      throw new ZtError('ZT_ERR_USAGE', `--no-listen opens no TCP port, but --admin is ${text}`, {exit: ExitCode.usage, suggestion: 'use --admin unix:PATH (ztctl finds it by the agent\'s name), or drop --no-listen'})
    }

    const served = await listenOrExplain(what, address, () => serveRoutes(address, routes, {localOnly: what === 'admin'}))
    agent.httpServers.push(served.server)
    addresses[what] = served.address
    agent.logger.info({address: served.address, component: what}, 'listener established')
  }
}

async function startConfigSource(agent: RunningAgent, applyConfig: Agent['applyConfig']): Promise<void> {
  const {credentials, logger} = agent
  await agent.options.configSource.start(applyConfig, {
    agent: agent.self.name,
    hbone: agent.addresses.advertise,
    identity: () => credentials.identity,
    onError: (message) => logger.error({error: message}, 'configuration not applied; keeping the last one'),
    software: agent.options.buildVersion,
    onState(sourceState, error) {
      if (error) logger.warn({error, state: sourceState}, 'configuration source disconnected; serving the last configuration and reconnecting')
      else logger.info({state: sourceState}, `configuration source ${sourceState}`)
    },
  })
}

async function startInpodRuntime(agent: RunningAgent, inpodOptions: NonNullable<AgentOptions['inpod']>): Promise<void> {
  const {credentials, self} = agent
  const {startInpod} = await import('../../inpod/runtime.js')
  const {controllerCall, controllerCertIssuer} = await import('../../inpod/controller-api.js')
  const viaController = agent.options.configSource.kind === 'controller'
  const engine = agent.data.client.kind === 'native' && inpodOptions.dataPath !== 'node' ? agent.data.client.engine : undefined
  agent.inpod = await startInpod(inpodOptions, {
    advertise: () => agent.addresses.advertise,
    engine,
    controller: viaController && inpodOptions.publish !== false ? controllerCall(() => credentials.identity) : undefined,
    issueCert: inpodOptions.issueCert ?? (viaController ? controllerCertIssuer(() => credentials.identity) : undefined),
    logger: () => agent.logger, metrics: agent.metrics, node: self.name, state: () => agent.state, timing: agent.options.timing ?? {}, tracker: agent.tracker, trustDomain: self.trustDomain,
  })
}

function splitHostPort(text: string): [string, number] {
  const colon = text.lastIndexOf(':')
  return [text.slice(0, colon).replace(/^\[|\]$/g, ''), Number(text.slice(colon + 1))]
}

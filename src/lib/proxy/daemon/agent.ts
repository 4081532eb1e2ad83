// The agent's lifecycle: start every listener (HBONE, admin, readiness, metrics), apply each
// configuration live (inbound listeners, policy re-checks, revocations), renew the certificate at
// half-life, and on shutdown stop accepting, drain up to a deadline, then close everything.
import type {Server} from 'node:http'

import type {IdentitySummary, Policy, Revocation} from '../../config/types.js'
import {ExitCode, ZtError, describeSystemError} from '../../errors.js'
import {CertificateRenewer} from '../../client/renew.js'
import type {IdentityFile} from '../../identity/file.js'
import {certInfo, splitPem} from '../../pki/cert-info.js'
import {formatHostPort, type HostPort, parseHostPort} from '../address.js'
import {adminRoutes, metricsRoutes, readinessRoutes, serveRoutes} from '../observe/admin.js'
import {trustDomainOf} from '../state/authz.js'
import type {ConfigSource, ConfigSourceStatus, ConfigUpdate} from '../state/config-source.js'
import {ConnectionTracker} from '../paths/connection.js'
import {HbonePool, type PoolSessionInfo} from '../hbone/hbone-pool.js'
import type {HboneEngine} from '../hbone/hbone-engine.js'
import {HboneServer} from '../paths/hbone-server.js'
import {startIdleTrim} from './idle-trim.js'
import {createLogger, type Logger, type LogLevel} from '../observe/log.js'
import {Metrics} from '../observe/metrics.js'
import {NativeHbonePool} from '../hbone/native-pool.js'
import {NativeHboneServer} from '../paths/native-server.js'
import {NativeContexts} from '../hbone/native-tls.js'
import {type ConnectionSnapshot, ConnectionRegistry} from '../observe/registry.js'
import {H2_CONNECTION_WINDOW, H2_STREAM_WINDOW} from '../hbone/relay.js'
import {MeshState} from '../state/state.js'
import {Credentials} from '../hbone/tls.js'
import {type InboundListenerInfo, type InboundOptions, InboundTunnels} from '../paths/tunnel-inbound.js'

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
  identity: IdentityFile
  /** in-pod data path (`--inpod-socket`): serve the CNI socket and the workloads' listeners */
  inpod?: {socketPath: string; stateDir: string; issueCert?: import('../../inpod/certs.js').IssueWorkloadCert}
  /** sidecar mode (`--mode proxy|tproxy`): local binds or interception for the services it may dial */
  sidecar?: import('../../sidecar/sidecar.js').SidecarOptions
  /** where a renewed certificate is written back (atomically, 0600) */
  identityFile?: string
  /** after this long without a connection, trim memory once (src/lib/proxy/daemon/idle-trim.ts); undefined: never */
  idleTrimMs?: number
  logDestination?: NodeJS.WritableStream
  logLevel?: LogLevel
  metrics?: string
  readiness?: string
  /** Renew the certificate at half-life with this (the controller's /v1/renew); undefined: never renew. */
  renewIdentity?: (identity: IdentityFile) => Promise<IdentityFile>
  /** pool and server timers; tests shorten them */
  timing?: {idleTimeoutMs?: number; keepaliveIntervalMs?: number; keepaliveTimeoutMs?: number}
}

export type DataPathChoice = 'auto' | 'native' | 'node'

export interface AgentAddresses {
  admin?: string
  advertise: string
  hbone: string
  /** inbound tunnel key (`tcp/NAME@AGENT`) → bound address */
  inbound: Record<string, string>
  metrics?: string
  readiness?: string
}

export interface CertificateDump {
  certChain: {expirationTime: string; pem: string; serialNumber: string; validFrom: string}[]
  identity: string
  rootCerts: {expirationTime: string; pem: string; serialNumber: string; validFrom: string}[]
  state: 'Available' | 'Expired'
}

/** GET /config_dump (ztunnel's keys where they apply; see docs/hbone.md "Admin"). */
export interface ConfigDump {
  agent: {name: string; spiffe: string; trustDomain: string}
  build: {node: string; version: string}
  certificates: CertificateDump[]
  config: {
    addresses: AgentAddresses
    /** the data path in use */
    dataPath: 'native' | 'node'
    drainTimeoutMs: number
    h2: {connectionWindow: number; maxStreamsPerSession: number; streamWindow: number}
    source: ConfigSourceStatus & {kind: string}
  }
  connections: ConnectionSnapshot[]
  identities: IdentitySummary[]
  inbound: InboundListenerInfo[]
  policies: Policy[]
  pool: PoolSessionInfo[]
  ready: boolean
  pending: string[]
  revocations: Revocation[]
  services: {allow?: string[]; endpoints: {agent: string; hbone: string; target: string; weight: number}[]; hostedHere: boolean; name: string}[]
  version: number
  /** agents (node-level entries) and, with namespace/ips/node, the pods node agents publish */
  workloads: {hbone: string; ips?: string[]; name: string; namespace?: string; node?: string; protocol: 'HBONE'; self: boolean; spiffe: string}[]
}

export interface Agent {
  readonly addresses: AgentAddresses
  applyConfig(update: ConfigUpdate): Promise<void>
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

const MAX_STREAMS_PER_SESSION = 100

function listenAddress(text: string, what: string): HostPort {
  const address = parseHostPort(text, '0.0.0.0')
  if (!address) {
    throw new ZtError('ZT_ERR_USAGE', `--${what} ${JSON.stringify(text)} is not HOST:PORT`, {exit: ExitCode.usage, suggestion: `e.g. --${what} 127.0.0.1:0`})
  }

  return address
}

async function listenOrExplain<T>(what: string, address: HostPort, start: () => Promise<T>): Promise<T> {
  try {
    return await start()
  } catch (error) {
    throw new ZtError('ZT_ERR_LISTEN', `cannot listen on ${formatHostPort(address)} for ${what}: ${describeSystemError(error)}`, {
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
  const logger = await createLogger({destination: options.logDestination, level: options.logLevel ?? 'info'})
  const getLogger = (): Logger => logger
  const credentials = new Credentials(options.identity)
  const self = {name: options.identity.name, trustDomain: trustDomainOf(options.identity.spiffe)}
  let state = MeshState.empty(self)
  let configured = false
  let draining = false
  const drainTimeoutMs = options.drainTimeoutMs ?? 5000
  const metrics = new Metrics({component: 'ztctl-agent', tag: options.buildVersion ?? 'unknown'})
  const registry = new ConnectionRegistry()
  const tracker = new ConnectionTracker(registry, metrics, getLogger)
  const timing = options.timing ?? {}
  const addresses: AgentAddresses = {advertise: '', hbone: '', inbound: {}}
  const engine = await loadEngine(options.dataPath ?? 'auto', logger)
  const native = engine && {contexts: new NativeContexts(engine, credentials), engine}
  const isRevoked = (serial: string): boolean => state.isRevoked(serial)
  const sourceSpiffe = (): string => credentials.identity.spiffe
  const advertise = (): string => addresses.advertise
  const common = {logger: getLogger, metrics, state: () => state, tracker, ...timing}
  const dataPath: InboundOptions['dataPath'] = native
    ? {engine: native.engine, kind: 'native', pool: new NativeHbonePool({...native, isRevoked, maxStreamsPerSession: MAX_STREAMS_PER_SESSION, sourceSpiffe, ...timing})}
    : {kind: 'node', pool: new HbonePool({credentials, isRevoked, maxStreamsPerSession: MAX_STREAMS_PER_SESSION, ...timing})}
  const {pool} = dataPath
  const hboneServer = native ? new NativeHboneServer({...common, ...native, advertise, selfSpiffe: sourceSpiffe}) : new HboneServer({...common, advertise, credentials})
  const inbound = new InboundTunnels({...common, dataPath, sourceSpiffe})
  const httpServers: Server[] = []
  let renewer: CertificateRenewer | undefined
  let inpod: import('../../inpod/runtime.js').InpodRuntime | undefined
  let sidecar: import('../../sidecar/sidecar.js').SidecarHooks | undefined
  let resolveClosed!: () => void
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve
  })
  let resolveReady!: () => void
  const ready = new Promise<void>((resolve) => {
    resolveReady = resolve
  })

  const hboneAddress = listenAddress(options.hbone, 'hbone')
  const bound = await listenOrExplain('hbone', hboneAddress, () => hboneServer.listen(hboneAddress))
  addresses.hbone = formatHostPort({host: bound.address, port: bound.port})
  addresses.advertise = options.advertise ?? formatHostPort({host: ['0.0.0.0', '::'].includes(bound.address) ? '127.0.0.1' : bound.address, port: bound.port})
  logger.info({address: addresses.hbone, advertise: addresses.advertise, component: 'hbone'}, 'listener established')

  const pending = (): string[] => {
    if (draining) return ['draining']
    const waiting: string[] = []
    if (!configured) waiting.push('configuration')
    const failed = inbound.list().filter((listener) => listener.error)
    if (failed.length > 0) waiting.push(...failed.map((listener) => `listener ${listener.key}`))
    return waiting
  }

  let applying = Promise.resolve()
  const applyConfig = async (update: ConfigUpdate): Promise<void> => {
    const run = applying.then(async () => {
      const next = new MeshState(update.snapshot, update.version, self)
      const previous = state
      state = next
      const failures = draining ? [] : await inbound.apply([...next.inboundTunnels(), ...(sidecar?.listeners(next) ?? [])])
      for (const listener of inbound.list()) if (listener.address) addresses.inbound[listener.key] = listener.address
      for (const key of Object.keys(addresses.inbound)) if (!inbound.list().some((listener) => listener.key === key && listener.address)) delete addresses.inbound[key]
      if (!draining) await sidecar?.applied(next, addresses.inbound)
      enforce(previous, next)
      inpod?.applyConfig(next)
      configured = true
      logger.info({version: update.version, inbound: next.inboundTunnels().length, hosted: next.hostedTunnels().length}, 'configuration applied')
      if (failures.length > 0) throw new ZtError('ZT_ERR_CONFIG_APPLY', failures.join('; '))
      if (pending().length === 0) resolveReady()
    })
    applying = run.catch(() => {})
    return run
  }

  /** Re-check live connections against a new configuration: revoked peers and policy changes. */
  const enforce = (previous: MeshState, next: MeshState): void => {
    const revoked = (serial: string | undefined): boolean => next.isRevoked(serial) && !previous.isRevoked(serial)
    const revokedCount = registry.closeWhere((record) => revoked(record.peerSerial), {flag: 'CERT_REVOKED', message: 'connection closed: peer certificate revoked'})
    pool.closeWhere((session) => next.isRevoked(session.peerSerial))
    hboneServer.closeSessionsWhere((peer) => next.isRevoked(peer.serial))
    const deniedCount = registry.closeWhere((record) => {
      if (record.direction !== 'inbound') return false
      const target = parseHostPort(record.hboneTarget)
      if (!target) return false
      const tunnel = next.hostedTunnel(target, record.service)
      const [sourceAddress] = splitHostPort(record.sourceAddress)
      return !next.authorize({destinationPort: target.port, service: record.service, sourceAddress, sourceSpiffe: record.sourceSpiffe}, tunnel).allowed
    }, {flag: 'DENY', message: 'connection closed due to policy change'})
    if (revokedCount + deniedCount > 0) logger.info({revoked: revokedCount, denied: deniedCount}, 'closed live connections after a configuration change')
  }

  const configDump = (): ConfigDump => {
    const {snapshot} = state
    const serviceNames = [...new Set(Object.values(snapshot.outbound).map((tunnel) => tunnel.service))].sort()
    const identity = credentials.identity
    const leaf = credentials.certificate
    return {
      agent: {name: self.name, spiffe: identity.spiffe, trustDomain: self.trustDomain},
      build: {node: process.version, version: options.buildVersion ?? 'unknown'},
      certificates: [{
        certChain: splitPem(identity.cert).map((pem) => certDump(pem)),
        identity: identity.spiffe,
        rootCerts: splitPem(identity.ca).map((pem) => certDump(pem)),
        state: leaf.notAfter.getTime() > Date.now() ? 'Available' : 'Expired',
      }],
      config: {
        addresses: structuredClone(addresses),
        dataPath: dataPath.kind,
        drainTimeoutMs,
        h2: {connectionWindow: H2_CONNECTION_WINDOW, maxStreamsPerSession: MAX_STREAMS_PER_SESSION, streamWindow: H2_STREAM_WINDOW},
        source: {...options.configSource.status(), kind: options.configSource.kind},
      },
      connections: registry.list(),
      identities: Object.values(snapshot.identity),
      inbound: inbound.list(),
      pending: pending(),
      policies: Object.values(snapshot.policy),
      pool: pool.list(),
      ready: pending().length === 0,
      revocations: Object.values(snapshot.revocation),
      services: serviceNames.map((name) => {
        const hosted = state.hostedTunnels().find((tunnel) => tunnel.service === name)
        return {allow: hosted?.allow, endpoints: state.endpoints(name).map(({agent, hbone, target, weight}) => ({agent, hbone, target, weight})), hostedHere: Boolean(hosted), name}
      }),
      version: state.version,
      workloads: [
        ...Object.values(snapshot.agent).map((agent) => ({hbone: agent.hbone, name: agent.name, protocol: 'HBONE' as const, self: agent.name === self.name, spiffe: agent.spiffe})),
        ...Object.values(snapshot.workload ?? {}).map((pod) => ({
          hbone: pod.hbone, ips: pod.ips, name: pod.name, namespace: pod.namespace, node: pod.node, protocol: 'HBONE' as const, self: pod.node === self.name,
          spiffe: `spiffe://${self.trustDomain}/ns/${pod.namespace}/sa/${pod.serviceAccount}`,
        })),
      ],
    }
  }

  let shuttingDown: Promise<void> | undefined
  const shutdown = async (reason = 'shutdown requested'): Promise<void> => {
    shuttingDown ??= (async () => {
      draining = true
      renewer?.stop()
      logger.info({reason, connections: registry.size, deadlineMs: drainTimeoutMs}, 'draining')
      hboneServer.drain()
      inbound.close()
      inpod?.close()
      await sidecar?.close().catch((error: Error) => logger.error({error: error.message}, 'sidecar cleanup failed'))
      await options.configSource.close().catch(() => {})
      const drained = await registry.drained(drainTimeoutMs)
      if (!drained) {
        logger.warn({connections: registry.size}, 'drain duration expired with pending connections, forcefully shutting down')
        registry.closeWhere(() => true, {flag: '-', message: 'connection closed: agent shutting down (drain deadline passed)'})
      }

      pool.destroy()
      hboneServer.destroy()
      native?.contexts.free()
      for (const server of httpServers) {
        server.close()
        server.closeAllConnections()
      }

      logger.info('agent stopped')
      await new Promise<void>((resolve) => {
        logger.flush(() => resolve())
      })
      resolveClosed()
    })()
    return shuttingDown
  }

  try {
    const routeHandlers = {
      configDump,
      getLogLevel: () => logger.level,
      pending,
      quit: () => void shutdown('POST /quitquitquit'),
      renderMetrics: () => metrics.render(),
      setLogLevel: (level: LogLevel) => {
        logger.level = level
      },
    }
    for (const [what, text, routes] of [
      ['admin', options.admin, adminRoutes(routeHandlers)],
      ['metrics', options.metrics, metricsRoutes(routeHandlers)],
      ['readiness', options.readiness, readinessRoutes(routeHandlers)],
    ] as const) {
      if (text === undefined) continue
      const address = listenAddress(text, what)
      const served = await listenOrExplain(what, address, () => serveRoutes(address, routes))
      httpServers.push(served.server)
      addresses[what] = served.address
      logger.info({address: served.address, component: what}, 'listener established')
    }

    if (options.sidecar) {
      const {startSidecar} = await import('../../sidecar/sidecar.js')
      sidecar = await startSidecar(options.sidecar, getLogger)
    }

    await options.configSource.start(applyConfig, {
      agent: self.name,
      hbone: addresses.advertise,
      identity: () => credentials.identity,
      onError: (message) => logger.error({error: message}, 'configuration not applied; keeping the last one'),
      onState(sourceState, error) {
        if (error) logger.warn({error, state: sourceState}, 'configuration source disconnected; serving the last configuration and reconnecting')
        else logger.info({state: sourceState}, `configuration source ${sourceState}`)
      },
    })
    if (options.inpod) {
      const {startInpod} = await import('../../inpod/runtime.js')
      const {controllerCall, controllerCertIssuer} = await import('../../inpod/controller-api.js')
      const viaController = options.configSource.kind === 'controller'
      inpod = await startInpod(options.inpod, {
        advertise: () => addresses.advertise,
        controller: viaController ? controllerCall(() => credentials.identity) : undefined,
        issueCert: options.inpod.issueCert ?? (viaController ? controllerCertIssuer(() => credentials.identity) : undefined),
        logger: getLogger, metrics, node: self.name, state: () => state, timing, tracker, trustDomain: self.trustDomain,
      })
    }
  } catch (error) {
    hboneServer.destroy()
    inpod?.close()
    await sidecar?.close().catch(() => {})
    for (const server of httpServers) server.close()
    throw error
  }

  if (options.renewIdentity) {
    renewer = new CertificateRenewer(credentials.identity, {file: options.identityFile, maxBackoffMs: 150_000, minBackoffMs: 500, renew: options.renewIdentity})
    renewer.on('renewed', (identity: IdentityFile) => {
      credentials.update(identity)
      logger.info({serial: credentials.certificate.serial, notAfter: credentials.certificate.notAfter.toISOString()}, 'certificate renewed')
    })
    renewer.on('error', (error: Error, retryInMs: number) => logger.warn({error: error.message, retryInMs}, 'certificate renewal failed; still serving with the current certificate'))
    renewer.start()
  }

  if (options.idleTrimMs) startIdleTrim({closed, idleMs: options.idleTrimMs, logger, source: registry})
  return {
    addresses,
    applyConfig,
    closed,
    configDump,
    logger,
    metrics,
    ready,
    shutdown,
  }
}

/** The native engine for `native` (a ZtError when it cannot load), `auto` (undefined, with a warning), or none for `node`. */
async function loadEngine(choice: DataPathChoice, logger: Logger): Promise<HboneEngine | undefined> {
  if (choice === 'node') return undefined
  const {HboneEngine} = await import('../hbone/hbone-engine.js')
  try {
    return HboneEngine.get()
  } catch (error) {
    if (choice === 'native') throw error
    logger.warn({error: (error as Error).message}, 'native data path unavailable; using the node:http2 one')
    return undefined
  }
}

function splitHostPort(text: string): [string, number] {
  const colon = text.lastIndexOf(':')
  return [text.slice(0, colon).replace(/^\[|\]$/g, ''), Number(text.slice(colon + 1))]
}

// `ztctl controller run` in one function: open the site (a data dir here, or a Kubernetes namespace),
// its store and CA, serve, keep the admin identity valid, and run the background writers while this
// replica leads. Locally it also writes a CLI context, so the next ztctl command just works.
import {hostname} from 'node:os'
import {isIP} from 'node:net'

import {ExitCode, ZtError} from '../errors.js'
import {type HostPort, parseHostPort} from '../proxy/address.js'
import type {Home} from '../home/home.js'
import {createKeyAndCsr, createSigner} from '../pki/pki.js'
import {ensureAdminIdentity} from './admin.js'
import type {ControllerCA} from './ca.js'
import {ConfigHub} from './config-hub.js'
import {type HealthServer, startHealthServer} from './health.js'
import {type NodeAuthority, scopedNodeAuthority} from './node-authority.js'
import type {Logger} from './logger.js'
import {controllerSpiffe, type ControllerServices} from './routes/types.js'
import {type ServerTls, startServer} from './server.js'
import {type ControllerSite, type Leadership, openLocalSite} from './site.js'
import type {KubeSiteOptions} from './site-kube.js'
import type {Store} from './store/store.js'

export const DEFAULT_LISTEN = '127.0.0.1:15012'
export const DEFAULT_TRUST_DOMAIN = 'cluster.local'
const SERVER_CERT_TTL_SECONDS = 7 * 86_400
/** How often the leader drops expired revocations and re-checks the admin identity. */
const DEFAULT_HOUSEKEEPING_MS = 60_000
export const DEFAULT_ADMIN_CERT_TTL_SECONDS = 30 * 86_400

export interface ControllerOptions {
  /** URL for JWTs, identity files and the context; default https://<bound address> */
  advertise?: string
  /** import an intermediate CA instead of creating one (local store; in a cluster, fill Secret ztctl-ca) */
  caImport?: {certFile: string; keyFile: string}
  /** lifetime of admin certificates (renewed on use past half-life); default 30 days */
  adminCertTtlSeconds?: number
  /** leaf certificate lifetime; default 24 h */
  certTtlSeconds?: number
  contextName?: string
  dataDir?: string
  /** HOST:PORT of the plain-HTTP /ready and /healthz listener; undefined: none */
  health?: string
  home: Home
  /** embed a hub (`controller run --hub`): where agents attach, and its identity name (role hub) */
  hub?: {listen: string; logLevel?: import('../proxy/observe/log.js').LogLevel; name: string}
  /** how often the leader runs its background writers (default 60 s) */
  housekeepingMs?: number
  /** with store kubernetes: where the cluster is and which namespace holds the state */
  kube?: Omit<KubeSiteOptions, 'logger'>
  /** decides for node identities bound to a Kubernetes node (scope.node): the pods on that node */
  kubernetesNodes?: NodeAuthority
  /** host:port; port 0 = any free port */
  listen?: string
  logger?: Logger
  /** a backend other than SQLite for the local site (tests) */
  openStore?: (dataDir: string) => Promise<Store>
  /** where the state lives: a SQLite data dir (default) or the Kubernetes API */
  store?: 'kubernetes' | 'sqlite'
  trustDomain?: string
  /** reported by GET /v1/version */
  version: string
}

export interface RunningController {
  adminCreated: boolean
  /** the admin identity: a file path, or `secret/ztctl-admin` */
  adminIdentityPath: string
  caCreated: boolean
  caFingerprint: string
  /** the CLI context written (local store only) */
  contextName?: string
  /** the data dir (local store only) */
  dataDir?: string
  /** what the banner shows about where the state lives */
  describe: Record<string, string>
  health?: {host: string; port: number}
  readonly isLeader: boolean
  /** the embedded hub's address (--hub) */
  hub?: string
  listen: {host: string; port: number}
  store: 'kubernetes' | 'sqlite'
  trustDomain: string
  url: string
  close(): Promise<void>
}

const silentLogger: Logger = {debug() {}, error() {}, info() {}, warn() {}}

export function parseListen(text: string, flag = '--listen'): HostPort {
  const listen = parseHostPort(text.trim())
  if (!listen) {
    throw new ZtError('ZT_ERR_BAD_LISTEN', `${flag} "${text}" is not HOST:PORT`, {
      exit: ExitCode.usage,
      suggestion: `e.g. ${flag} 127.0.0.1:15012, ${flag} 0.0.0.0:15012 or ${flag} [::1]:0 (0 = any free port)`,
    })
  }

  return listen
}

export async function startController(options: ControllerOptions): Promise<RunningController> {
  const logger = options.logger ?? silentLogger
  const listen = parseListen(options.listen ?? DEFAULT_LISTEN)
  const health = options.health === undefined ? undefined : parseListen(options.health, '--health')
  const cleanups: (() => Promise<void>)[] = []
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.reverse()) await step().catch(() => {})
  }

  try {
    const site = await openSite(options, logger)
    cleanups.push(() => site.close())
    const {store} = site
    const trustDomain = await fixTrustDomain(store, options.trustDomain)
    const ca = await site.loadCA(trustDomain)
    await store.setMeta('ca_fingerprint', ca.fingerprint)
    const signer = await createSigner(ca)
    const hub = new ConfigHub(store, logger)
    const services: ControllerServices = {
      adminCertTtlSeconds: options.adminCertTtlSeconds ?? DEFAULT_ADMIN_CERT_TTL_SECONDS, ca, certTtlSeconds: options.certTtlSeconds ?? 86_400, hub, logger,
      nodeAgents: site.nodeAgents, nodeAuthority: scopedNodeAuthority(options.kubernetesNodes ?? site.mesh?.authority), signer, store, trustDomain, url: '', version: options.version,
    }
    const tls = await issueServerTls(services, listen.host, options.advertise)
    const server = await startServer(services, listen, tls)
    cleanups.push(() => server.close())
    services.url = options.advertise?.replace(/\/+$/, '') ?? advertisedUrl(server.address)
    const renewal = scheduleServerCertRenewal(services, listen.host, options.advertise, server.setTls, logger)
    cleanups.push(async () => clearTimeout(renewal.timer))

    let hubAddress: string | undefined
    if (options.hub) {
      // The embedded hub keeps its identity file beside the SQLite state; in a cluster a hub is its own Deployment.
      const dataDir = (site as ControllerSite & {dataDir?: string}).dataDir
      if (!dataDir) throw new ZtError('ZT_ERR_USAGE', '--hub runs an embedded hub only with --store sqlite', {exit: ExitCode.usage, suggestion: 'drop --hub, or run the controller with --store sqlite'})
      const {startEmbeddedHub} = await import('./embedded-hub.js')
      const hub = await startEmbeddedHub(services, {dataDir, ...options.hub})
      cleanups.push(() => hub.shutdown('controller stopping'))
      hubAddress = hub.addresses.listen
    }

    // `ztctl controller admin` finds the URL here when it re-issues an admin on this host.
    await store.setMeta('url', services.url)
    // Locally the admin identity must exist before the banner (the next command uses it); in a cluster
    // the leader keeps it (and its replicas may start at the same moment).
    const adminCreated = site.kind === 'sqlite' && (await ensureAdminIdentity(services, site.admin)) === 'created'
    const leadership = startHousekeeping(site, services, options.housekeepingMs ?? DEFAULT_HOUSEKEEPING_MS)
    cleanups.push(() => leadership.stop())
    await site.announce(services.url, adminCreated)
    let healthServer: HealthServer | undefined
    if (health) {
      healthServer = await startHealthServer(health, {facts: () => ({...leadership.describe(), store: site.kind}), notReady: () => undefined})
      cleanups.push(() => healthServer!.close())
    }

    logger.info({...site.describe, trustDomain, url: services.url}, 'controller started')
    return {
      adminCreated, adminIdentityPath: site.admin.location, caCreated: ca.created, caFingerprint: ca.fingerprint,
      contextName: site.kind === 'sqlite' ? options.contextName ?? 'local' : undefined,
      dataDir: (site as ControllerSite & {dataDir?: string}).dataDir, describe: site.describe, health: healthServer?.address, hub: hubAddress,
      get isLeader() {
        return leadership.isLeader
      },
      listen: server.address, store: site.kind, trustDomain, url: services.url, close: cleanup,
    }
  } catch (error) {
    await cleanup()
    throw error
  }
}

async function openSite(options: ControllerOptions, logger: Logger): Promise<ControllerSite> {
  if (options.store !== 'kubernetes') {
    return openLocalSite({caImport: options.caImport, contextName: options.contextName ?? 'local', dataDir: options.dataDir, home: options.home, logger, openStore: options.openStore})
  }

  if (options.caImport) {
    throw new ZtError('ZT_ERR_USAGE', '--ca-cert/--ca-key import into a data dir; in a cluster the CA is Secret ztctl-ca', {
      exit: ExitCode.usage, suggestion: 'put your intermediate into Secret ztctl-ca (keys ca.crt with its chain, ca.key) before the controller starts',
    })
  }

  const {openKubeSite} = await import('./site-kube.js')
  return openKubeSite({namespace: 'ztctl-system', ...options.kube, logger})
}

/**
 * The leader's background writers: drop expired revocations and keep the admin identity valid, now and
 * every `intervalMs`, only while this replica leads (always, locally).
 */
function startHousekeeping(site: ControllerSite, services: ControllerServices, intervalMs: number): Leadership {
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined
  const round = async (): Promise<void> => {
    try {
      await services.store.sweepExpired(new Date())
      if (site.kind === 'kubernetes') {
        const done = await ensureAdminIdentity(services, site.admin, {renewAtHalfLife: true})
        if (done !== 'kept') services.logger.info({admin: site.admin.location, done}, 'admin identity written')
        for (const kept of site.keptIdentities ?? []) {
          const result = await ensureAdminIdentity(services, kept.home, {identity: kept.identity, renewAtHalfLife: true})
          if (result !== 'kept') services.logger.info({done: result, identity: kept.identity.name, where: kept.home.location}, 'identity written')
        }
      }
    } catch (error) {
      services.logger.warn({err: (error as Error).message}, 'housekeeping failed; retrying at the next round')
    }
  }

  const schedule = (): void => {
    timer = setTimeout(() => {
      running = round().finally(() => {
        running = undefined
        if (timer) schedule()
      })
    }, intervalMs)
    timer.unref()
  }

  const leadership = site.lead({
    onStart() {
      site.mesh?.startLeading()
      running = round()
      schedule()
    },
    onStop() {
      site.mesh?.stopLeading()
      clearTimeout(timer)
      timer = undefined
    },
  })
  return {
    describe: () => leadership.describe(),
    get isLeader() {
      return leadership.isLeader
    },
    async stop() {
      clearTimeout(timer)
      timer = undefined
      await running
      await leadership.stop()
    },
  }
}

async function fixTrustDomain(store: Store, requested: string | undefined): Promise<string> {
  const stored = await store.getMeta('trust_domain')
  if (stored !== undefined) {
    if (requested !== undefined && requested !== stored) {
      throw new ZtError('ZT_ERR_TRUST_DOMAIN_MISMATCH', `this data dir belongs to trust domain "${stored}", not "${requested}"`, {
        exit: ExitCode.conflict,
        suggestion: `drop --trust-domain (or pass ${stored}), or use a new --data-dir for a new trust domain`,
      })
    }

    return stored
  }

  const trustDomain = requested ?? DEFAULT_TRUST_DOMAIN
  if (!/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/.test(trustDomain)) {
    throw new ZtError('ZT_ERR_BAD_TRUST_DOMAIN', `"${trustDomain}" is not a valid SPIFFE trust domain`, {
      exit: ExitCode.usage,
      suggestion: 'use lower-case letters, digits, "." and "-", e.g. cluster.local',
    })
  }

  await store.setMeta('trust_domain', trustDomain)
  return trustDomain
}

function advertisedUrl(address: {host: string; port: number}): string {
  let host = address.host
  if (host === '0.0.0.0' || host === '::') host = hostname()
  return `https://${isIP(host) === 6 ? `[${host}]` : host}:${address.port}`
}

async function issueServerTls(services: Pick<ControllerServices, 'ca' | 'signer' | 'trustDomain'>, listenHost: string, advertise?: string): Promise<ServerTls> {
  const names = new Set(['localhost', hostname(), listenHost])
  if (advertise) {
    try {
      names.add(new URL(advertise).hostname.replaceAll(/^\[|\]$/g, ''))
    } catch {
      throw new ZtError('ZT_ERR_BAD_ADVERTISE', `--advertise "${advertise}" is not a URL`, {exit: ExitCode.usage, suggestion: 'e.g. --advertise https://ctrl.example:15012'})
    }
  }

  const ipAddresses = new Set(['127.0.0.1', '::1'])
  const dnsNames = new Set<string>()
  for (const name of names) {
    if (name === '0.0.0.0' || name === '::') continue
    if (isIP(name)) ipAddresses.add(name)
    else dnsNames.add(name)
  }

  const {csrPem, keyPem} = await createKeyAndCsr('ztctl-controller')
  const issued = await services.signer.signCsr(csrPem, {
    dnsNames: [...dnsNames], ipAddresses: [...ipAddresses], spiffe: controllerSpiffe(services.trustDomain), ttlSeconds: SERVER_CERT_TTL_SECONDS,
  })
  // The chain includes the CA itself, so `enroll` can find the CA the token pins in the handshake.
  return {ca: services.ca.bundle, cert: issued.certPem + services.ca.bundle, key: keyPem}
}

function scheduleServerCertRenewal(
  services: ControllerServices, listenHost: string, advertise: string | undefined, apply: (tls: ServerTls) => void, logger: Logger,
): {timer: NodeJS.Timeout} {
  const handle = {timer: undefined as unknown as NodeJS.Timeout}
  const arm = (): void => {
    handle.timer = setTimeout(() => {
      issueServerTls(services, listenHost, advertise)
        .then((tls) => {
          apply(tls)
          logger.info({}, 'server certificate renewed')
        })
        .catch((error: unknown) => logger.error({err: (error as Error).message}, 'server certificate renewal failed'))
        .finally(arm)
    }, (SERVER_CERT_TTL_SECONDS * 1000) / 2)
    handle.timer.unref()
  }

  arm()
  return handle
}

export type {ControllerCA}

// `ztctl controller run` in one function: lock the data dir, open the store, load the CA, serve, and
// make sure an admin identity and a CLI context exist so the next ztctl command just works.
import {hostname} from 'node:os'
import {isIP} from 'node:net'
import path from 'node:path'

import {ExitCode, ZtError} from '../errors.js'
import {type HostPort, parseHostPort} from '../proxy/address.js'
import {upsertContext} from '../home/contexts.js'
import {defaultControllerDataDir, type Home, identitiesDir, makeDir} from '../home/home.js'
import {createKeyAndCsr, createSigner} from '../pki/pki.js'
import {type ControllerCA, loadOrCreateCA} from './ca.js'
import {ConfigHub} from './config-hub.js'
import {ADMIN_NAME, ensureAdminIdentity} from './admin.js'
import {lockDataDir} from './lock.js'
import {type NodeAuthority, scopedNodeAuthority} from './node-authority.js'
import type {Logger} from './logger.js'
import {controllerSpiffe, type ControllerServices} from './routes/types.js'
import {type ServerTls, startServer} from './server.js'
import {openSqliteStore} from './store/sqlite.js'
import type {Store} from './store/store.js'

export const DEFAULT_LISTEN = '127.0.0.1:15012'
export const DEFAULT_TRUST_DOMAIN = 'cluster.local'
const SERVER_CERT_TTL_SECONDS = 7 * 86_400
export const DEFAULT_ADMIN_CERT_TTL_SECONDS = 30 * 86_400

export interface ControllerOptions {
  /** URL for JWTs, identity files and the context; default https://<bound address> */
  advertise?: string
  /** import an intermediate CA instead of creating one */
  caImport?: {certFile: string; keyFile: string}
  /** lifetime of admin certificates (renewed on use past half-life); default 30 days */
  adminCertTtlSeconds?: number
  /** leaf certificate lifetime; default 24 h */
  certTtlSeconds?: number
  contextName?: string
  dataDir?: string
  home: Home
  /** embed a hub (`controller run --hub`): where agents attach, and its identity name (role hub) */
  hub?: {listen: string; logLevel?: import('../proxy/observe/log.js').LogLevel; name: string}
  /** decides for node identities bound to a Kubernetes node (scope.node): the pods on that node */
  kubernetesNodes?: NodeAuthority
  /** host:port; port 0 = any free port */
  listen?: string
  logger?: Logger
  /** a backend other than SQLite (the Kubernetes one) */
  openStore?: (dataDir: string) => Promise<Store>
  trustDomain?: string
  /** reported by GET /v1/version */
  version: string
}

export interface RunningController {
  adminCreated: boolean
  adminIdentityPath: string
  caCreated: boolean
  caFingerprint: string
  contextName: string
  dataDir: string
  /** the embedded hub's address (--hub) */
  hub?: string
  listen: {host: string; port: number}
  trustDomain: string
  url: string
  close(): Promise<void>
}

const silentLogger: Logger = {debug() {}, error() {}, info() {}, warn() {}}

export function parseListen(text: string): HostPort {
  const listen = parseHostPort(text.trim())
  if (!listen) {
    throw new ZtError('ZT_ERR_BAD_LISTEN', `--listen "${text}" is not HOST:PORT`, {
      exit: ExitCode.usage,
      suggestion: 'e.g. --listen 127.0.0.1:15012, --listen 0.0.0.0:15012 or --listen [::1]:0 (0 = any free port)',
    })
  }

  return listen
}

export async function startController(options: ControllerOptions): Promise<RunningController> {
  const logger = options.logger ?? silentLogger
  const listen = parseListen(options.listen ?? DEFAULT_LISTEN)
  const dataDir = path.resolve(options.dataDir ?? defaultControllerDataDir(options.home))
  await makeDir(dataDir, 0o700)
  const lock = await lockDataDir(dataDir)
  const cleanups: (() => Promise<void>)[] = [() => lock.release()]
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.reverse()) await step().catch(() => {})
  }

  try {
    const store = await (options.openStore ?? openSqliteStore)(dataDir)
    cleanups.push(() => store.close())
    const trustDomain = await fixTrustDomain(store, options.trustDomain)
    const ca = await loadOrCreateCA({dataDir, importFrom: options.caImport, trustDomain})
    await store.setMeta('ca_fingerprint', ca.fingerprint)
    const signer = await createSigner(ca)
    const hub = new ConfigHub(store, logger)
    const services: ControllerServices = {
      adminCertTtlSeconds: options.adminCertTtlSeconds ?? DEFAULT_ADMIN_CERT_TTL_SECONDS, ca, certTtlSeconds: options.certTtlSeconds ?? 86_400, hub, logger,
      nodeAuthority: scopedNodeAuthority(options.kubernetesNodes), signer, store, trustDomain, url: '', version: options.version,
    }
    const tls = await issueServerTls(services, listen.host, options.advertise)
    const server = await startServer(services, listen, tls)
    cleanups.push(() => server.close())
    services.url = options.advertise?.replace(/\/+$/, '') ?? advertisedUrl(server.address)
    const renewal = scheduleServerCertRenewal(services, listen.host, options.advertise, server.setTls, logger)
    cleanups.push(async () => clearTimeout(renewal.timer))

    let hubAddress: string | undefined
    if (options.hub) {
      const {startEmbeddedHub} = await import('./embedded-hub.js')
      const hub = await startEmbeddedHub(services, {dataDir, ...options.hub})
      cleanups.push(() => hub.shutdown('controller stopping'))
      hubAddress = hub.addresses.listen
    }

    // `ztctl controller admin` finds the URL here when it re-issues an admin on this host.
    await store.setMeta('url', services.url)
    const adminIdentityPath = path.join(identitiesDir(options.home), `${ADMIN_NAME}.json`)
    const adminCreated = await ensureAdminIdentity(services, adminIdentityPath)
    const contextName = options.contextName ?? 'local'
    await upsertContext(options.home, {controller: services.url, controllerDataDir: dataDir, identity: adminIdentityPath, name: contextName}, adminCreated)
    logger.info({dataDir, trustDomain, url: services.url}, 'controller started')

    return {
      adminCreated, adminIdentityPath, caCreated: ca.created, caFingerprint: ca.fingerprint, contextName, dataDir, hub: hubAddress,
      listen: server.address, trustDomain, url: services.url, close: cleanup,
    }
  } catch (error) {
    await cleanup()
    throw error
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

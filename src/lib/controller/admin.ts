// The admin identity: kept valid by the controller (written when missing, unknown to the store or revoked;
// rewritten when its URL changed; in a cluster also re-issued past half-life by the leader), and re-issued
// by `ztctl controller admin` on the controller's host — the way back for an admin whose certificate
// expired (nobody else can help: the API needs an admin). Both record the certificate in the store, so a
// running controller accepts it at once; an existing admin identity keeps its id. Where it lives is the
// site's business (AdminHome): a 0600 file beside the CLI's contexts, or Secret ztctl-admin in a cluster
// (whoever may read that Secret is a mesh admin, as with a kubeconfig).
import {randomUUID} from 'node:crypto'
import {access} from 'node:fs/promises'
import path from 'node:path'

import {ExitCode, ZtError} from '../errors.js'
import {loadContexts, upsertContext} from '../home/contexts.js'
import {type Home, identitiesDir} from '../home/home.js'
import {type IdentityFile, readIdentityFile, writeIdentityFile} from '../identity/file.js'
import {msUntilRenewal} from '../client/renew.js'
import {certInfo} from '../pki/cert-info.js'
import {createKeyAndCsr, createSigner} from '../pki/pki.js'
import {loadOrCreateCA} from './ca.js'
import {issueIdentityCert} from './issue.js'
import {identitySpiffe, type ControllerServices} from './routes/types.js'

export const ADMIN_NAME = 'admin'

/** An identity the controller keeps valid in a home of its own: the admin, or (in a cluster) the host pod's. */
export interface KeptIdentity {
  admin: boolean
  name: string
  roles: string[]
}

const ADMIN: KeptIdentity = {admin: true, name: ADMIN_NAME, roles: []}

export interface AdminHome {
  /** where it lives, for humans: a path or `secret/NAME` */
  readonly location: string
  read(): Promise<IdentityFile | undefined>
  /**
   * Write IDENTITY in place of READ (what read() returned) only if the home still holds it: false when it
   * changed or was deleted meanwhile, so an update never brings back what somebody removed.
   */
  replace(identity: IdentityFile, read: IdentityFile): Promise<boolean>
  write(identity: IdentityFile): Promise<void>
}

export const adminFile = (file: string): AdminHome => ({
  location: file,
  read: () => readIdentityFile(file),
  // one process owns a local controller's file: nobody else changes it between the read and the write
  replace: async (identity) => {
    await writeIdentityFile(file, identity)
    return true
  },
  write: (identity) => writeIdentityFile(file, identity),
})

type AdminServices = Pick<ControllerServices, 'adminCertTtlSeconds' | 'ca' | 'certTtlSeconds' | 'signer' | 'store' | 'trustDomain' | 'url'>

/**
 * Make sure the admin identity in `home` is valid. `renewAtHalfLife`: re-issue it past half-life (in a
 * cluster nobody else does; a local CLI renews its own on use). Returns what was done.
 */
export async function ensureAdminIdentity(
  services: AdminServices, home: AdminHome, options: {identity?: KeptIdentity; renewAtHalfLife?: boolean} = {},
): Promise<'created' | 'kept' | 'renewed'> {
  const spec = options.identity ?? ADMIN
  const existing = await home.read().catch(() => undefined)
  if (existing) {
    const serial = certInfo(existing.cert).serial
    const principal = await services.store.authenticate(serial, new Date())
    if (principal && principal.identity.admin === spec.admin && (spec.admin || principal.identity.name === spec.name)) {
      // A home changed or deleted since the read is left to the next round (which re-creates a deleted one).
      if (options.renewAtHalfLife && msUntilRenewal(existing) <= 0) {
        return (await home.replace(await issueAdmin(services, {...spec, name: existing.name}), existing)) ? 'renewed' : 'kept'
      }

      if (existing.controller === services.url) return 'kept'
      // Same identity, new address (port 0 or --advertise changed): only the URL needs updating.
      await home.replace({...existing, controller: services.url}, existing)
      return 'kept'
    }
  }

  await home.write(await issueAdmin(services, spec))
  return 'created'
}

/** A fresh key and certificate for the live identity SPEC names, or a new one when there is none. */
async function issueAdmin(services: AdminServices, spec: KeptIdentity): Promise<IdentityFile> {
  const {name} = spec
  const current = await services.store.getIdentity(name)
  if (current && current.status === 'active' && current.admin === spec.admin) {
    const {csrPem, keyPem} = await createKeyAndCsr(name)
    const issued = await issueIdentityCert(services, current, csrPem)
    await services.store.recordCert(issued.record)
    return adminIdentityFile(services, {cert: issued.cert, key: keyPem, name, spiffe: current.spiffe})
  }

  if (current && current.status === 'active') {
    throw new ZtError('ZT_ERR_NOT_ADMIN', `identity "${name}" exists and is ${spec.admin ? 'not an admin' : 'an admin'}`, {
      exit: ExitCode.conflict,
      suggestion: 'pass --name with another name for the admin identity',
    })
  }

  // Pending (never enrolled) or absent: a new admin identity, enrolled here (no token leaves the process).
  if (current) await services.store.revokeIdentity(name, new Date())
  return enrollLocally(services, spec)
}

/** Create and enroll an identity inside the controller (no token leaves the process): the admin, the host pod's, an embedded hub. */
export async function enrollLocally(services: AdminServices, {admin, name, roles}: KeptIdentity): Promise<IdentityFile> {
  const tokenId = randomUUID()
  const identity = await services.store.createIdentity({
    admin, id: randomUUID(), name, roles, spiffe: identitySpiffe(services.trustDomain, name),
    tokenExpiresAt: new Date(Date.now() + 60_000).toISOString(), tokenId,
  })
  const {csrPem, keyPem} = await createKeyAndCsr(name)
  const issued = await issueIdentityCert(services, identity, csrPem)
  await services.store.completeEnrollment(tokenId, issued.record, new Date())
  return adminIdentityFile(services, {cert: issued.cert, key: keyPem, name, spiffe: identity.spiffe})
}

function adminIdentityFile(services: AdminServices, parts: Pick<IdentityFile, 'cert' | 'key' | 'name' | 'spiffe'>): IdentityFile {
  return {...parts, ca: services.ca.bundle, controller: services.url, version: 1}
}

export interface RecoverAdminOptions {
  adminCertTtlSeconds: number
  /** the context to (re)write and make current */
  contextName: string
  dataDir: string
  home: Home
  /** the admin identity's name */
  name?: string
  /** the controller's URL; default the one the controller recorded at its last start */
  url?: string
}

export interface RecoveredAdmin {
  context: string
  controller: string
  identityFile: string
  name: string
  notAfter: string
}

/**
 * `ztctl controller admin`: re-issue the admin identity from the data dir, running controller or not
 * (SQLite takes the second writer; the controller reads certificates from the store on every request).
 */
export async function recoverAdmin(options: RecoverAdminOptions): Promise<RecoveredAdmin> {
  const dataDir = path.resolve(options.dataDir)
  await access(path.join(dataDir, 'ca.key')).catch((error: unknown) => {
    throw new ZtError('ZT_ERR_NOT_FOUND', `${dataDir} is not a controller data dir (it holds no ca.key)`, {
      cause: error,
      exit: ExitCode.notFound,
      suggestion: 'pass the --data-dir the controller runs with (default <home>/controller, e.g. ~/.local/share/ztctl/controller)',
    })
  })
  const {openSqliteStore} = await import('./store/sqlite.js')
  const store = await openSqliteStore(dataDir)
  try {
    const [trustDomain, recordedUrl] = await Promise.all([store.getMeta('trust_domain'), store.getMeta('url')])
    const url = options.url?.replace(/\/+$/, '') ?? recordedUrl
    if (!trustDomain || !url) {
      throw new ZtError('ZT_ERR_NOT_FOUND', `the store in ${dataDir} does not say where the controller listens`, {
        exit: ExitCode.notFound,
        suggestion: 'pass --url https://HOST:PORT (the controller\'s --advertise or listen address)',
      })
    }

    const ca = await loadOrCreateCA({dataDir, trustDomain})
    const services: AdminServices = {adminCertTtlSeconds: options.adminCertTtlSeconds, ca, certTtlSeconds: options.adminCertTtlSeconds, signer: await createSigner(ca), store, trustDomain, url}
    const name = options.name ?? ADMIN_NAME
    const identity = await issueAdmin(services, {...ADMIN, name})
    const known = (await loadContexts(options.home)).contexts.find((context) => context.name === options.contextName)
    const identityFile = known?.identity ?? path.join(identitiesDir(options.home), `${name}.json`)
    await writeIdentityFile(identityFile, identity)
    await upsertContext(options.home, {controller: url, controllerDataDir: dataDir, identity: identityFile, name: options.contextName}, true)
    return {context: options.contextName, controller: url, identityFile, name, notAfter: certInfo(identity.cert).notAfter.toISOString()}
  } finally {
    await store.close()
  }
}

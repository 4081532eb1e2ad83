// The admin identity the CLI uses, kept valid by the controller: created when missing (or unknown to the
// store, or revoked), re-issued past half-life, rewritten when the controller's URL changed. Where it
// lives is the site's business: a 0600 file beside the CLI's contexts (local), Secret ztctl-admin
// (Kubernetes: whoever may read that Secret is a mesh admin, as with a kubeconfig).
import {randomUUID} from 'node:crypto'

import {msUntilRenewal} from '../client/renew.js'
import type {IdentityFile} from '../identity/file.js'
import {certInfo} from '../pki/cert-info.js'
import {createKeyAndCsr} from '../pki/pki.js'
import {issueIdentityCert} from './issue.js'
import {type ControllerServices, identitySpiffe} from './routes/types.js'

export const ADMIN_NAME = 'admin'
/** The SPIFFE ID of every controller replica's server certificate: what clients pin. */
export const controllerSpiffe = (trustDomain: string): string => `spiffe://${trustDomain}/controller`

export interface AdminHome {
  /** where it lives, for humans: a path or `secret/NAME` */
  readonly location: string
  read(): Promise<IdentityFile | undefined>
  write(identity: IdentityFile): Promise<void>
}

/** Make sure the admin identity in `home` is valid; returns what was done. */
export async function ensureAdminIdentity(services: ControllerServices, home: AdminHome): Promise<'created' | 'kept' | 'renewed'> {
  const existing = await home.read().catch(() => undefined)
  if (existing) {
    const principal = await services.store.authenticate(certInfo(existing.cert).serial, new Date())
    if (principal?.identity.admin) {
      const pinned = controllerSpiffe(services.trustDomain)
      if (msUntilRenewal(existing) <= 0) {
        await home.write(await reissue(services, principal.identity, existing))
        return 'renewed'
      }

      if (existing.controller === services.url && existing.controllerSpiffe === pinned) return 'kept'
      // Same identity, new address (port 0, --advertise changed): only the URL needs updating.
      await home.write({...existing, controller: services.url, controllerSpiffe: pinned})
      return 'kept'
    }
  }

  const current = await services.store.getIdentity(ADMIN_NAME)
  if (current) await services.store.revokeIdentity(ADMIN_NAME, new Date())
  await home.write(await enrollLocally(services, ADMIN_NAME, true))
  return 'created'
}

/** Create and enroll an identity inside the controller (no token leaves the process). */
export async function enrollLocally(services: ControllerServices, name: string, admin: boolean): Promise<IdentityFile> {
  const tokenId = randomUUID()
  const identity = await services.store.createIdentity({
    admin, id: randomUUID(), name, roles: [], spiffe: identitySpiffe(services.trustDomain, name),
    tokenExpiresAt: new Date(Date.now() + 60_000).toISOString(), tokenId,
  })
  const {csrPem, keyPem} = await createKeyAndCsr(name)
  const issued = await issueIdentityCert(services, identity, csrPem)
  await services.store.completeEnrollment(tokenId, issued.record, new Date())
  return identityFile(services, {cert: issued.cert, key: keyPem, name, spiffe: identity.spiffe})
}

async function reissue(services: ControllerServices, identity: {id: string; spiffe: string}, existing: IdentityFile): Promise<IdentityFile> {
  const {csrPem, keyPem} = await createKeyAndCsr(existing.name)
  const issued = await issueIdentityCert(services, identity, csrPem)
  await services.store.recordCert(issued.record)
  return identityFile(services, {cert: issued.cert, key: keyPem, name: existing.name, spiffe: identity.spiffe})
}

function identityFile(services: ControllerServices, parts: Pick<IdentityFile, 'cert' | 'key' | 'name' | 'spiffe'>): IdentityFile {
  return {...parts, ca: services.ca.bundle, controller: services.url, controllerSpiffe: controllerSpiffe(services.trustDomain), version: 1}
}

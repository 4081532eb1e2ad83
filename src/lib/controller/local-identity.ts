// Identities the controller holds itself (its admin, an embedded hub): issued inside the process (no token
// leaves it), written to a file, and written again only when missing, revoked, or unknown to this store.
import {randomUUID} from 'node:crypto'

import {readIdentityFile, writeIdentityFile} from '../identity/file.js'
import {certInfo} from '../pki/cert-info.js'
import {createKeyAndCsr} from '../pki/pki.js'
import {issueIdentityCert} from './issue.js'
import {identitySpiffe, type ControllerServices} from './routes/types.js'

export interface LocalIdentity {
  admin: boolean
  name: string
  roles: string[]
}

/** Write FILE for WANTED when it is missing, expired, or unknown to this store. Returns true when written. */
export async function ensureLocalIdentity(services: ControllerServices, file: string, wanted: LocalIdentity): Promise<boolean> {
  const existing = await readIdentityFile(file).catch(() => undefined)
  if (existing) {
    const serial = certInfo(existing.cert).serial
    const principal = await services.store.authenticate(serial, new Date())
    const same = principal?.identity.name === wanted.name && principal.identity.admin === wanted.admin && wanted.roles.every((role) => principal.identity.roles.includes(role))
    if (same && existing.controller === services.url) return false
    if (same) {
      // Same identity, new address (port 0 or --advertise changed): only the URL needs updating.
      await writeIdentityFile(file, {...existing, controller: services.url})
      return false
    }
  }

  const current = await services.store.getIdentity(wanted.name)
  if (current) await services.store.revokeIdentity(wanted.name, new Date())
  await writeIdentityFile(file, await enrollLocally(services, wanted))
  return true
}

/** Create and enroll an identity inside the controller (no token leaves the process). */
async function enrollLocally(services: ControllerServices, {admin, name, roles}: LocalIdentity) {
  const tokenId = randomUUID()
  const identity = await services.store.createIdentity({
    admin, id: randomUUID(), name, roles, spiffe: identitySpiffe(services.trustDomain, name),
    tokenExpiresAt: new Date(Date.now() + 60_000).toISOString(), tokenId,
  })
  const {csrPem, keyPem} = await createKeyAndCsr(name)
  const issued = await issueIdentityCert(services, identity, csrPem)
  await services.store.completeEnrollment(tokenId, issued.record, new Date())
  return {ca: services.ca.bundle, cert: issued.cert, controller: services.url, key: keyPem, name, spiffe: identity.spiffe, version: 1 as const}
}

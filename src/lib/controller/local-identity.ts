// The embedded hub's identity (`controller run --hub`): issued inside the controller (no token leaves the
// process), kept in the data dir, and issued again only when missing, revoked, or unknown to this store.
import {readIdentityFile, writeIdentityFile} from '../identity/file.js'
import {certInfo} from '../pki/cert-info.js'
import {enrollLocally} from './admin.js'
import type {ControllerServices} from './routes/types.js'

/** Write FILE for identity NAME with ROLES when it is missing or no longer valid. Returns true when written. */
export async function ensureLocalIdentity(services: ControllerServices, file: string, wanted: {name: string; roles: string[]}): Promise<boolean> {
  const existing = await readIdentityFile(file).catch(() => undefined)
  if (existing) {
    const principal = await services.store.authenticate(certInfo(existing.cert).serial, new Date())
    const same = principal?.identity.name === wanted.name && !principal.identity.admin && wanted.roles.every((role) => principal.identity.roles.includes(role))
    if (same) {
      if (existing.controller !== services.url) await writeIdentityFile(file, {...existing, controller: services.url})
      return false
    }
  }

  if (await services.store.getIdentity(wanted.name)) await services.store.revokeIdentity(wanted.name, new Date())
  await writeIdentityFile(file, await enrollLocally(services, {admin: false, name: wanted.name, roles: wanted.roles}))
  return true
}

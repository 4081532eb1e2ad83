// The identity commands' lib side: one function per command, each opening a session, calling the
// API and returning data for rendering.
import path from 'node:path'

import {checkNodeScope} from '../controller/node-authority.js'
import type {IdentityRecord} from '../controller/store/store.js'
import {IDENTITY_NAME} from '../controller/routes/types.js'
import {ExitCode, ZtError} from '../errors.js'
import {writeFileAtomic} from '../home/home.js'
import {type Rollout, waitForRollout} from '../mesh/rollout.js'
import {openSession, type SessionOptions} from './session.js'

export type IdentityView = IdentityRecord

export interface CreateIdentityOptions extends SessionOptions {
  admin?: boolean
  expiresInSeconds?: number
  name: string
  /** where to write the JWT; '-' = do not write (the caller prints it); default ./NAME.jwt */
  out?: string
  roles?: string[]
  /** node identities: what it may serve (checked here and by the controller) */
  scope?: {podCidrs?: string[]; serves?: string[]}
}

export interface CreatedIdentity {
  expiresAt: string
  id: string
  identity: IdentityView
  jwt: string
  /** absent when the JWT went to stdout */
  jwtPath?: string
  name: string
}

export function checkName(name: string): void {
  if (!IDENTITY_NAME.test(name)) {
    throw new ZtError('ZT_ERR_INVALID_NAME', `"${name}" is not a valid identity name`, {
      exit: ExitCode.usage,
      suggestion: 'use 1-63 lower-case letters, digits, ".", "_" or "-", starting and ending with a letter or digit',
    })
  }
}

async function withSession<T>(options: SessionOptions, work: (session: Awaited<ReturnType<typeof openSession>>) => Promise<T>): Promise<T> {
  const session = await openSession(options)
  try {
    return await work(session)
  } finally {
    session.close()
  }
}

export async function createIdentity(options: CreateIdentityOptions): Promise<CreatedIdentity> {
  checkName(options.name)
  const scope = checkNodeScope(options.scope ?? {}, options.roles ?? [])
  const created = await withSession(options, (session) =>
    session.request<{expiresAt: string; identity: IdentityView; jwt: string}>('POST', '/v1/identities', {
      admin: options.admin === true, expiresInSeconds: options.expiresInSeconds, name: options.name, roles: options.roles ?? [], ...(scope ? {scope} : {}),
    }))
  let jwtPath: string | undefined
  if (options.out !== '-') {
    jwtPath = path.resolve(options.out ?? `${options.name}.jwt`)
    await writeFileAtomic(jwtPath, created.jwt + '\n', 0o600)
  }

  return {expiresAt: created.expiresAt, id: created.identity.id, identity: created.identity, jwt: created.jwt, jwtPath, name: options.name}
}

export async function listIdentities(options: SessionOptions): Promise<IdentityView[]> {
  return withSession(options, async (session) => (await session.request<{items: IdentityView[]}>('GET', '/v1/identities')).items)
}

export async function showIdentity(options: SessionOptions & {name: string}): Promise<IdentityView> {
  checkName(options.name)
  return withSession(options, (session) => session.request<IdentityView>('GET', `/v1/identities/${encodeURIComponent(options.name)}`))
}

export interface DeletedIdentity {
  identity: IdentityView
  revokedSerials: string[]
  /** with waitMs: the agents that dropped it */
  rollout?: Rollout
  version: number
}

export interface DeleteIdentityOptions extends SessionOptions {
  /** asked before deleting the identity this context uses; without it (no terminal), `yes` is required */
  confirmSelf?: () => Promise<boolean>
  name: string
  waitMs?: number
  yes?: boolean
}

export async function deleteIdentity(options: DeleteIdentityOptions): Promise<DeletedIdentity> {
  checkName(options.name)
  return withSession(options, async (session) => {
    if (options.name === session.identity.name && !options.yes) {
      const confirmed = options.confirmSelf ? await options.confirmSelf() : false
      if (!confirmed) {
        throw new ZtError('ZT_ERR_CONFIRMATION_REQUIRED', `"${options.name}" is the identity of context "${session.context.name}": deleting it locks this context out`, {
          exit: options.confirmSelf ? ExitCode.failure : ExitCode.usage,
          suggestion: options.confirmSelf ? 'nothing was deleted' : `pass --yes to delete it anyway (another admin context keeps working: \`ztctl context list\`)`,
        })
      }
    }

    const deleted = await session.request<DeletedIdentity>('DELETE', `/v1/identities/${encodeURIComponent(options.name)}`)
    if (options.waitMs === undefined || options.name === session.identity.name) return deleted
    return {...deleted, rollout: await waitForRollout(session, deleted.version, {owners: [], watchers: 'all'}, options.waitMs)}
  })
}

/** The controller's version for `ztctl version`: undefined when no context or no answer within the timeout. */
export async function probeControllerVersion(options: SessionOptions): Promise<undefined | {caFingerprint: string; trustDomain: string; url: string; version: string}> {
  try {
    return await withSession({...options, noRenew: true}, async (session) => ({
      ...(await session.request<{caFingerprint: string; trustDomain: string; version: string}>('GET', '/v1/version')),
      url: session.context.controller,
    }))
  } catch {
    return undefined
  }
}

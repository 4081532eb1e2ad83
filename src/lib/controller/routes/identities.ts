// Identity management (admin only): create with a one-time token, list, show, delete (= revoke).
import {randomUUID} from 'node:crypto'

import {ExitCode, ZtError} from '../../errors.js'
import {signEnrollmentJwt} from '../jwt.js'
import {checkNodeScope} from '../node-authority.js'
import type {IdentityRecord} from '../store/store.js'
import {controllerSpiffe, IDENTITY_NAME, identitySpiffe, type Route} from './types.js'
import {asObject, badRequest, optionalStringList} from './validate.js'

const ROLE = /^[A-Za-z0-9][\w.-]{0,63}$/
const MAX_TOKEN_SECONDS = 365 * 86_400

export function invalidNameError(name: string): ZtError {
  return new ZtError('ZT_ERR_INVALID_NAME', `"${name}" is not a valid identity name`, {
    exit: ExitCode.usage,
    suggestion: 'use 1-63 lower-case letters, digits, ".", "_" or "-", starting and ending with a letter or digit',
  })
}

export function checkIdentityName(name: unknown): string {
  if (typeof name !== 'string' || !IDENTITY_NAME.test(name)) throw invalidNameError(String(name))
  return name
}

async function findIdentity(store: {getIdentity(name: string): Promise<IdentityRecord | undefined>}, name: string): Promise<IdentityRecord> {
  const identity = await store.getIdentity(name)
  if (!identity) {
    throw new ZtError('ZT_ERR_NOT_FOUND', `identity "${name}" does not exist`, {
      exit: ExitCode.notFound,
      suggestion: 'list them with `ztctl identity list`',
    })
  }

  return identity
}

export const identityRoutes: Route[] = [
  {
    access: 'admin',
    async handle({services}) {
      return {items: await services.store.listIdentities()}
    },
    method: 'GET',
    path: '/v1/identities',
  },
  {
    access: 'admin',
    async handle({body, services}) {
      const input = asObject(body)
      const name = checkIdentityName(input.name)
      const roles = optionalStringList(input, 'roles', ROLE)
      const scope = input.scope === undefined ? undefined : checkNodeScope(asObject(input.scope, '"scope"'), roles)
      const expiresInSeconds = input.expiresInSeconds ?? 3 * 3600
      if (typeof expiresInSeconds !== 'number' || !Number.isFinite(expiresInSeconds) || expiresInSeconds < 1 || expiresInSeconds > MAX_TOKEN_SECONDS) {
        throw badRequest('"expiresInSeconds" must be a number of seconds between 1 and one year')
      }

      const admin = input.admin === true
      const now = Math.floor(Date.now() / 1000)
      const exp = now + Math.ceil(expiresInSeconds)
      const jti = randomUUID()
      const expiresAt = new Date(exp * 1000).toISOString()
      const identity = await services.store.createIdentity({
        admin, id: randomUUID(), name, roles, ...(scope ? {scope} : {}), spiffe: identitySpiffe(services.trustDomain, name), tokenExpiresAt: expiresAt, tokenId: jti,
      })
      const jwt = signEnrollmentJwt(
        {caf: services.ca.fingerprint, ctl: controllerSpiffe(services.trustDomain), em: 'ott', exp, iat: now, iss: services.url, jti, roles, sub: name},
        services.ca.keyPem,
      )
      services.logger.info({identity: name, roles, scope}, 'identity created')
      return {expiresAt, identity, jwt}
    },
    method: 'POST',
    path: '/v1/identities',
  },
  {
    access: 'admin',
    async handle({params, services}) {
      return findIdentity(services.store, params.name)
    },
    method: 'GET',
    path: '/v1/identities/:name',
  },
  {
    access: 'admin',
    async handle({params, services}) {
      const target = await services.store.getIdentity(params.name)
      if (target?.admin && !(await services.store.listIdentities()).some((other) => other.admin && other.status === 'active' && other.name !== target.name)) {
        throw new ZtError('ZT_ERR_LAST_ADMIN', `"${target.name}" is the last admin identity: deleting it would leave nobody able to manage the mesh`, {
          exit: ExitCode.conflict,
          suggestion: 'create and enroll another admin first (`ztctl identity create NAME --admin`, then `ztctl enroll NAME.jwt --context NAME`)',
        })
      }

      const {identity, revoked, version} = await services.store.revokeIdentity(params.name, new Date()).catch(async (error: unknown) => {
        if (ZtError.is(error) && error.code === 'ZT_ERR_NOT_FOUND') await findIdentity(services.store, params.name)
        throw error
      })
      // Refused at once on every route (the store says so); live config streams are cut here.
      services.hub.disconnectIdentity(identity.name)
      services.logger.info({identity: identity.name, serials: revoked.map((cert) => cert.serial)}, 'identity revoked')
      return {identity, revokedSerials: revoked.map((cert) => cert.serial), version}
    },
    method: 'DELETE',
    path: '/v1/identities/:name',
  },
]

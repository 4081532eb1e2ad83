// Enrollment (the one-time token is the credential) and renewal (the current certificate is).
import {ExitCode, ZtError} from '../../errors.js'
import {issueIdentityCert, renewIdentityCert} from '../issue.js'
import {decodeEnrollmentJwt, verifyEnrollmentJwt} from '../jwt.js'
import {tokenExpiredError} from '../store/errors.js'
import type {Route} from './types.js'
import {asObject, requireString} from './validate.js'

export const enrollmentRoutes: Route[] = [
  {
    access: 'anonymous',
    async handle({body, services}) {
      const input = asObject(body)
      const decoded = decodeEnrollmentJwt(requireString(input, 'token'))
      const csr = requireString(input, 'csr')
      if (decoded.claims.caf !== services.ca.fingerprint || !verifyEnrollmentJwt(decoded, services.ca.certPem)) {
        throw new ZtError('ZT_ERR_TOKEN_INVALID', 'the enrollment token was not signed by this controller, or was altered', {
          exit: ExitCode.auth,
          suggestion: 'use the .jwt file exactly as `ztctl identity create` wrote it on this controller',
        })
      }

      const now = new Date()
      if (decoded.claims.exp * 1000 <= now.getTime()) throw tokenExpiredError(new Date(decoded.claims.exp * 1000).toISOString())
      const token = await services.store.findToken(decoded.claims.jti)
      if (!token || token.identity.name !== decoded.claims.sub) {
        throw new ZtError('ZT_ERR_TOKEN_INVALID', 'the enrollment token is not known to this controller', {
          exit: ExitCode.auth,
          suggestion: 'ask an admin for a new token: `ztctl identity create NAME`',
        })
      }

      const issued = await issueIdentityCert(services, token.identity, csr)
      const identity = await services.store.completeEnrollment(decoded.claims.jti, issued.record, now)
      services.logger.info({identity: identity.name, serial: issued.record.serial}, 'identity enrolled')
      return {ca: services.ca.bundle, cert: issued.cert, controller: services.url, name: identity.name, spiffe: identity.spiffe}
    },
    method: 'POST',
    path: '/v1/enroll',
  },
  {
    access: 'identity',
    async handle({body, principal, services}) {
      const csr = requireString(asObject(body), 'csr')
      // Recorded before it is handed out; a revocation that landed while we signed wins (ZT_ERR_REVOKED).
      const issued = await renewIdentityCert(services, principal!.identity, csr)
      services.logger.info({identity: principal!.identity.name, serial: issued.record.serial}, 'certificate renewed')
      return {ca: services.ca.bundle, cert: issued.cert}
    },
    method: 'POST',
    path: '/v1/renew',
  },
]

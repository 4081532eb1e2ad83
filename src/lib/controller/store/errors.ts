// The enrollment errors every Store backend throws in the same words.
import {ExitCode, ZtError} from '../../errors.js'

export function tokenUsedError(name: string): ZtError {
  return new ZtError('ZT_ERR_TOKEN_USED', `the enrollment token of "${name}" was already used`, {
    exit: ExitCode.conflict,
    suggestion: `a token works once; ask an admin for a new identity (\`ztctl identity delete ${name}\` then \`ztctl identity create ${name}\`)`,
  })
}

export function tokenExpiredError(expiresAt: string): ZtError {
  return new ZtError('ZT_ERR_TOKEN_EXPIRED', `the enrollment token expired at ${expiresAt}`, {
    exit: ExitCode.auth,
    suggestion: 'ask an admin for a new token (`ztctl identity delete NAME` then `ztctl identity create NAME`)',
  })
}

/** Throws the error for a token that cannot enroll (deleted identity, used, expired); returns when it can. */
export function checkTokenUsable(identity: {name: string; status: string; tokenExpiresAt: string}, now: Date): void {
  if (identity.status === 'revoked') {
    throw new ZtError('ZT_ERR_REVOKED', `identity "${identity.name}" was deleted; its token can no longer be used`, {
      exit: ExitCode.auth,
      suggestion: 'ask an admin for a new token: `ztctl identity create NAME`',
    })
  }

  if (identity.status !== 'pending') throw tokenUsedError(identity.name)
  if (identity.tokenExpiresAt <= now.toISOString()) throw tokenExpiredError(identity.tokenExpiresAt)
}

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

// The identity file `enroll` writes: everything a holder needs to prove who it is and to trust the mesh.
// Mode 0600. The holder rewrites it in place (atomically) when it renews its certificate.
import {readFile} from 'node:fs/promises'

import {ExitCode, ZtError} from '../errors.js'
import {writeFileAtomic} from '../home/home.js'
import {certInfo} from '../pki/cert-info.js'

export interface IdentityFile {
  /** PEM bundle of the mesh CA (and its chain up to the root when the CA is an intermediate) */
  ca: string
  /** PEM leaf certificate (followed by intermediates, if any) */
  cert: string
  /** https://host:port of the controller */
  controller: string
  /** PEM PKCS#8 private key, generated on this host */
  key: string
  name: string
  spiffe: string
  version: 1
}

export async function readIdentityFile(file: string): Promise<IdentityFile> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw new ZtError('ZT_ERR_IDENTITY_FILE', `cannot read identity file ${file}: ${(error as Error).message}`, {
      cause: error,
      exit: ExitCode.notFound,
      suggestion: 'enroll one with `ztctl enroll NAME.jwt`',
    })
  }

  return parseIdentityFile(text, file)
}

/** An identity file's text, checked; `where` names it in errors (a path, `secret/ztctl-admin`). */
export function parseIdentityFile(text: string, where: string): IdentityFile {
  let parsed: Partial<IdentityFile>
  try {
    parsed = JSON.parse(text) as Partial<IdentityFile>
  } catch {
    throw new ZtError('ZT_ERR_IDENTITY_FILE', `${where} is not an identity file (invalid JSON)`, {
      suggestion: 'pass the .json file that `ztctl enroll` wrote, not the .jwt token',
    })
  }

  for (const field of ['ca', 'cert', 'controller', 'key', 'name', 'spiffe'] as const) {
    if (typeof parsed[field] !== 'string' || parsed[field] === '') {
      throw new ZtError('ZT_ERR_IDENTITY_FILE', `${where} is not an identity file (missing "${field}")`, {
        suggestion: 'pass the .json file that `ztctl enroll` wrote',
      })
    }
  }

  return {...(parsed as IdentityFile), version: 1}
}

export async function writeIdentityFile(file: string, identity: IdentityFile): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(identity, null, 2) + '\n', 0o600)
}

/** Seconds from now until the certificate's half-life (negative when past it). */
export function secondsToHalfLife(identity: Pick<IdentityFile, 'cert'>, now = Date.now()): number {
  const {notAfter, notBefore} = certInfo(identity.cert)
  const half = notBefore.getTime() + (notAfter.getTime() - notBefore.getTime()) / 2
  return (half - now) / 1000
}

// `ztctl enroll NAME.jwt`: trust nothing up front. The token names the controller (`iss`), pins its CA
// (`caf`) and the controller's own SPIFFE ID (`ctl`). A first handshake with `iss`, unverified and
// carrying nothing, finds the pinned CA in the presented chain and checks the token's signature with it.
// The token and the CSR then go over a second handshake verified against exactly that CA and pinned to
// the controller's SPIFFE ID: an agent holding a certificate of the same CA is not the controller and gets
// nothing. The private key is generated here and never leaves the host.
import {createPrivateKey, X509Certificate} from 'node:crypto'
import {access, readFile, unlink} from 'node:fs/promises'
import path from 'node:path'

import {decodeEnrollmentJwt, type EnrollmentClaims, verifyEnrollmentJwt} from '../controller/jwt.js'
import {controllerSpiffe} from '../controller/routes/types.js'
import {ExitCode, ZtError} from '../errors.js'
import {checkContextName, upsertContext} from '../home/contexts.js'
import type {Home} from '../home/home.js'
import {type IdentityFile, writeIdentityFile} from '../identity/file.js'
import {certInfo, fingerprint, issuedByBundle, trustDomainOf} from '../pki/cert-info.js'
import {createKeyAndCsr} from '../pki/pki.js'
import {ControllerClient} from './controller-client.js'

export interface EnrollOptions {
  /** also write a CLI context of this name (controller URL + this identity file): a second admin, a remote controller */
  context?: {home: Home; name: string}
  force?: boolean
  /** the token file; `-` with `token` set: the token came on standard input */
  jwtPath: string
  /** identity file to write; default NAME.json next to the JWT (in the current folder for stdin) */
  out?: string
  timeoutMs?: number
  /** the token itself, when it was not read from jwtPath */
  token?: string
}

export interface EnrollResult {
  /** the context written with --context */
  context?: string
  controller: string
  identityPath: string
  name: string
  notAfter: string
  spiffe: string
}

interface EnrollResponse {
  ca: string
  cert: string
  controller: string
  name: string
  spiffe: string
}

export function defaultIdentityPath(jwtPath: string, name: string): string {
  if (jwtPath === '-') return `${name}.json`
  if (jwtPath.endsWith('.json')) {
    throw new ZtError('ZT_ERR_BAD_REQUEST', `cannot derive the identity file name from ${jwtPath}`, {
      exit: ExitCode.usage,
      suggestion: 'pass --out NAME.json',
    })
  }

  return jwtPath.endsWith('.jwt') ? jwtPath.slice(0, -4) + '.json' : jwtPath + '.json'
}

export async function enroll(options: EnrollOptions): Promise<EnrollResult> {
  if (options.context) checkContextName(options.context.name)
  const token = (options.token ?? (await readToken(options.jwtPath))).trim()
  const decoded = decodeEnrollmentJwt(token)
  const {claims} = decoded
  // Checked before any request is sent: an expired token never reaches the network.
  if (claims.exp * 1000 <= Date.now()) {
    throw new ZtError('ZT_ERR_TOKEN_EXPIRED', `the enrollment token for "${claims.sub}" expired at ${new Date(claims.exp * 1000).toISOString()}`, {
      exit: ExitCode.auth,
      suggestion: `ask an admin for a new one (\`ztctl identity delete ${claims.sub}\` then \`ztctl identity create ${claims.sub}\`)`,
    })
  }

  const identityPath = path.resolve(options.out ?? defaultIdentityPath(options.jwtPath, claims.sub))
  if (path.resolve(options.jwtPath) === identityPath) throw new ZtError('ZT_ERR_BAD_REQUEST', 'the identity file cannot replace the token file', {exit: ExitCode.usage})
  if (!options.force && (await exists(identityPath))) {
    throw new ZtError('ZT_ERR_IDENTITY_EXISTS', `${identityPath} already exists`, {
      exit: ExitCode.conflict,
      suggestion: 'pass --force to overwrite it, or --out to write elsewhere',
    })
  }

  const ca = await discoverPinnedCa(claims, options.timeoutMs)
  if (!verifyEnrollmentJwt(decoded, ca)) {
    throw new ZtError('ZT_ERR_TOKEN_INVALID', 'the enrollment token was altered: its signature does not match the controller\'s CA', {
      exit: ExitCode.auth,
      suggestion: 'use the .jwt file exactly as `ztctl identity create` wrote it, or ask an admin for a new one',
    })
  }

  const client = new ControllerClient({ca, serverSpiffe: expectedControllerSpiffe(claims, ca), timeoutMs: options.timeoutMs, url: claims.iss})
  try {
    const {csrPem, keyPem} = await createKeyAndCsr(claims.sub)
    const response = await client.request<EnrollResponse>('POST', '/v1/enroll', {csr: csrPem, token})
    const leaf = new X509Certificate(response.cert)
    if (!leaf.checkPrivateKey(createPrivateKey(keyPem)) || !issuedByBundle(response.cert, ca)) {
      throw new ZtError('ZT_ERR_BAD_RESPONSE', 'the controller returned a certificate that does not match the request')
    }

    const identity: IdentityFile = {
      ca: response.ca, cert: response.cert, controller: response.controller || claims.iss, key: keyPem,
      name: response.name, spiffe: response.spiffe, version: 1,
    }
    await writeIdentityFile(identityPath, identity)
    // The token is spent: remove it, only now that the identity file is safely written.
    if (options.token === undefined) await unlink(options.jwtPath).catch(() => {})
    if (options.context) {
      await upsertContext(options.context.home, {controller: identity.controller, identity: identityPath, name: options.context.name}, false)
    }

    return {
      context: options.context?.name, controller: identity.controller, identityPath, name: identity.name,
      notAfter: new Date(leaf.validTo).toISOString(), spiffe: identity.spiffe,
    }
  } finally {
    client.close()
  }
}

/** The CA the token pins, from the chain the server at `iss` presents (a handshake that sends nothing). */
async function discoverPinnedCa(claims: EnrollmentClaims, timeoutMs?: number): Promise<string> {
  const probe = new ControllerClient({insecure: true, timeoutMs, url: claims.iss})
  try {
    const chain = await probe.peerCertificateChain()
    const ca = chain.find((pem) => fingerprint(pem) === claims.caf)
    if (!ca) {
      throw new ZtError('ZT_ERR_TOKEN_WRONG_CONTROLLER', `the controller at ${claims.iss} does not hold the CA this token was issued under: the token belongs to another controller`, {
        exit: ExitCode.auth,
        suggestion: 'enroll with a token created on this controller (`ztctl identity create`); a re-created controller has a new CA',
      })
    }

    return ca
  } finally {
    probe.close()
  }
}

/** The controller's SPIFFE ID: the token's `ctl`, or (older tokens) the one of the CA's trust domain. */
function expectedControllerSpiffe(claims: EnrollmentClaims, caPem: string): string {
  if (claims.ctl) return claims.ctl
  const trustDomain = trustDomainOf(certInfo(caPem).spiffe)
  if (!trustDomain) {
    throw new ZtError('ZT_ERR_TOKEN_INVALID', 'the enrollment token does not name the controller\'s identity, and its CA carries no trust domain to derive it from', {
      exit: ExitCode.auth,
      suggestion: 'ask an admin for a new token (`ztctl identity create`): new tokens pin the controller\'s SPIFFE ID',
    })
  }

  return controllerSpiffe(trustDomain)
}

async function readToken(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (error) {
    throw new ZtError('ZT_ERR_NOT_FOUND', `cannot read the enrollment token ${file}: ${(error as Error).message}`, {
      cause: error,
      exit: ExitCode.notFound,
      suggestion: 'pass the .jwt file that `ztctl identity create` wrote',
    })
  }
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(() => true, () => false)
}

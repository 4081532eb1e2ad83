// One-time enrollment tokens: compact ES256 JWS signed with the controller's CA key. Parsing is
// strict and total: anything that is not exactly a well-formed token becomes ZT_ERR_TOKEN_INVALID.
import {createPrivateKey, sign, verify, X509Certificate} from 'node:crypto'

import {ExitCode, ZtError} from '../errors.js'

export interface EnrollmentClaims {
  /** SHA-256 fingerprint of the controller's CA certificate, lower hex: pins the CA */
  caf: string
  /** the controller's SPIFFE ID: pins the controller itself (a mesh certificate that is not the controller's gets no token); absent in older tokens */
  ctl?: string
  /** enrollment method: one-time token */
  em: 'ott'
  exp: number
  iat: number
  /** the controller URL */
  iss: string
  /** the token id */
  jti: string
  roles: string[]
  /** the identity name */
  sub: string
}

export interface DecodedJwt {
  claims: EnrollmentClaims
  signature: Buffer
  /** `header.payload`, the bytes the signature covers */
  signingInput: string
}

/** Upper bound of a token; ours are well under 2 KiB. */
const MAX_TOKEN_LENGTH = 16 * 1024
const HEADER = {alg: 'ES256', typ: 'JWT'}

const base64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url')

export function signEnrollmentJwt(claims: EnrollmentClaims, caKeyPem: string): string {
  const signingInput = `${base64url(JSON.stringify(HEADER))}.${base64url(JSON.stringify(claims))}`
  const signature = sign('sha256', Buffer.from(signingInput), {dsaEncoding: 'ieee-p1363', key: createPrivateKey(caKeyPem)})
  return `${signingInput}.${base64url(signature)}`
}

const invalid = (why: string): ZtError =>
  new ZtError('ZT_ERR_TOKEN_INVALID', `the enrollment token is invalid: ${why}`, {
    exit: ExitCode.auth,
    suggestion: 'use the .jwt file exactly as `ztctl identity create` wrote it, or ask an admin for a new one',
  })

/** Parse without verifying (the verification key is only known after reaching `iss`). */
export function decodeEnrollmentJwt(token: string): DecodedJwt {
  const text = token.trim()
  if (text.length === 0 || text.length > MAX_TOKEN_LENGTH) throw invalid('empty or too long')
  const parts = text.split('.')
  if (parts.length !== 3 || parts.some((part) => !/^[\w-]+$/.test(part))) throw invalid('not a compact JWT (three base64url parts)')
  const header = parseJsonPart(parts[0], 'header')
  if (header.alg !== 'ES256') throw invalid(`unsupported algorithm ${JSON.stringify(header.alg)} (expected ES256)`)
  const claims = parseJsonPart(parts[1], 'payload')
  const signature = Buffer.from(parts[2], 'base64url')
  if (signature.length !== 64) throw invalid('the signature is not an ES256 signature')
  return {claims: checkClaims(claims), signature, signingInput: `${parts[0]}.${parts[1]}`}
}

/** True when the CA certificate's key made the signature. */
export function verifyEnrollmentJwt(decoded: DecodedJwt, caCertPem: string): boolean {
  try {
    const publicKey = new X509Certificate(caCertPem).publicKey
    return verify('sha256', Buffer.from(decoded.signingInput), {dsaEncoding: 'ieee-p1363', key: publicKey}, decoded.signature)
  } catch {
    return false
  }
}

function parseJsonPart(part: string, what: string): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
  } catch {
    throw invalid(`the ${what} is not JSON`)
  }

  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(`the ${what} is not a JSON object`)
  return value as Record<string, unknown>
}

function checkClaims(claims: Record<string, unknown>): EnrollmentClaims {
  const {caf, ctl, em, exp, iat, iss, jti, roles, sub} = claims
  const text = (value: unknown, name: string, max = 512): string => {
    if (typeof value !== 'string' || value.length === 0 || value.length > max) throw invalid(`claim "${name}" is missing or malformed`)
    return value
  }

  const seconds = (value: unknown, name: string): number => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw invalid(`claim "${name}" is missing or malformed`)
    return value
  }

  if (em !== 'ott') throw invalid(`enrollment method ${JSON.stringify(em)} is not supported (expected "ott")`)
  if (typeof caf !== 'string' || !/^[0-9a-f]{64}$/.test(caf)) throw invalid('claim "caf" is not a SHA-256 fingerprint')
  const issuer = text(iss, 'iss', 2048)
  let url: URL
  try {
    url = new URL(issuer)
  } catch {
    throw invalid('claim "iss" is not a URL')
  }

  if (url.protocol !== 'https:') throw invalid('claim "iss" is not an https URL')
  if (ctl !== undefined && (typeof ctl !== 'string' || !/^spiffe:\/\/[a-z0-9.-]{1,253}\/controller$/.test(ctl))) throw invalid('claim "ctl" is not the SPIFFE ID of a controller')
  if (roles !== undefined && (!Array.isArray(roles) || roles.length > 256 || roles.some((role) => typeof role !== 'string' || role.length > 256))) {
    throw invalid('claim "roles" is not a list of strings')
  }

  return {
    caf, ...(ctl === undefined ? {} : {ctl: ctl as string}), em, exp: seconds(exp, 'exp'), iat: seconds(iat, 'iat'), iss: issuer, jti: text(jti, 'jti', 128),
    roles: (roles as string[] | undefined) ?? [], sub: text(sub, 'sub', 63),
  }
}

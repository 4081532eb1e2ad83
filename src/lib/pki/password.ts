// Proxy passwords (RFC 1929 / Basic): the configuration carries only a salted scrypt hash, so no agent
// (and no dump of its configuration) learns a password. `scrypt$N$r$p$salt$key`, base64 fields.
import {createHash, randomBytes, scrypt, timingSafeEqual} from 'node:crypto'

const N = 16_384
const R = 8
const P = 1
const KEY_BYTES = 32
/** Verified (user, password) pairs, so a busy client does not pay scrypt on every connection. */
const verified = new Map<string, string>()
const MAX_VERIFIED = 256

function derive(password: string, salt: Buffer, cost: {N: number; p: number; r: number}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_BYTES, {...cost, maxmem: 64 * 1024 * 1024}, (error, key) => (error ? reject(error) : resolve(key)))
  })
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16)
  const key = await derive(password, salt, {N, p: P, r: R})
  return ['scrypt', N, R, P, salt.toString('base64'), key.toString('base64')].join('$')
}

export function isPasswordHash(text: string): boolean {
  return /^scrypt\$\d{1,7}\$\d{1,2}\$\d{1,2}\$[A-Za-z0-9+/=]{8,64}\$[A-Za-z0-9+/=]{40,64}$/.test(text)
}

/** Whether PASSWORD matches HASH (a malformed hash matches nothing). */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  if (!isPasswordHash(hash) || password.length > 1024) return false
  const memo = createHash('sha256').update(hash).update('\0').update(password).digest('base64')
  if (verified.get(memo) === hash) return true
  const [, n, r, p, salt, key] = hash.split('$') as [string, string, string, string, string, string]
  const cost = {N: Number(n), p: Number(p), r: Number(r)}
  if (cost.N > 1 << 20 || cost.r > 16 || cost.p > 4) return false
  const expected = Buffer.from(key, 'base64')
  const actual = await derive(password, Buffer.from(salt, 'base64'), cost).catch(() => undefined)
  const ok = actual !== undefined && actual.length === expected.length && timingSafeEqual(actual, expected)
  if (ok) {
    if (verified.size >= MAX_VERIFIED) verified.delete(verified.keys().next().value!)
    verified.set(memo, hash)
  }

  return ok
}

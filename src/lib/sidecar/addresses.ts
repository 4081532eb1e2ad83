// Stable intercept addresses for service host names, from 100.64.0.0/10 (RFC 6598, OpenZiti's default
// range). Each name hashes to an address, so every agent of the mesh hands out the same address for the
// same name without talking to anyone; two names that hash alike are resolved by re-hashing the later
// one (in sorted order) with a probe counter, so the outcome depends only on the set of names.
import {createHash} from 'node:crypto'

/** 100.64.0.0/10 as a 32-bit number and its host-bit count. */
const RANGE_BASE = (100 << 24) | (64 << 16)
const RANGE_HOST_BITS = 22
export const INTERCEPT_RANGE = '100.64.0.0/10'
/** Bounded probing: with 4 M addresses and at most a few thousand names this never runs out. */
const MAX_PROBES = 64

/** `Web.Mesh.` → `web.mesh`: DNS names compare case-insensitively, with or without the root dot. */
export function canonicalName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '')
}

function candidate(name: string, probe: number): string {
  const digest = createHash('sha256').update(probe === 0 ? name : `${name}#${probe}`).digest()
  const offset = digest.readUInt32BE(0) >>> (32 - RANGE_HOST_BITS)
  const value = (RANGE_BASE + offset) >>> 0
  return [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff].join('.')
}

/** The range's network and broadcast addresses are never handed out. */
const RESERVED = new Set(['100.64.0.0', '100.127.255.255'])

/** Name → address for every name (canonicalised, deduplicated). Same set of names → same map everywhere. */
export function allocateInterceptAddresses(names: Iterable<string>): Map<string, string> {
  const sorted = [...new Set([...names].map((name) => canonicalName(name)))].sort()
  const taken = new Set<string>(RESERVED)
  const allocation = new Map<string, string>()
  for (const name of sorted) {
    for (let probe = 0; probe < MAX_PROBES; probe++) {
      const address = candidate(name, probe)
      if (taken.has(address)) continue
      taken.add(address)
      allocation.set(name, address)
      break
    }

    if (!allocation.has(name)) throw new Error(`no free intercept address for ${name} after ${MAX_PROBES} probes`)
  }

  return allocation
}

/** The first-choice address of a name, before collision handling (tests use it to build collisions). */
export function preferredAddress(name: string): string {
  return candidate(canonicalName(name), 0)
}

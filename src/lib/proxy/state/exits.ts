// Proxy exits (`ztctl proxy config`): which agents dial which targets. A pattern is an IPv4/IPv6 CIDR (or
// a bare address), an exact host name, `*.suffix` (any name below the suffix), or `*` (every name).
// Names match name patterns, IP literals match CIDRs. With several exits the most specific match wins:
// an exact name over a suffix, a longer suffix over a shorter one, a longer prefix over a shorter one,
// `*` last. An exit never serves a target one of its exclusions matches, and after resolving a name it
// refuses an address an excluded CIDR holds (a name cannot smuggle an excluded address past it).
import {isIP} from 'node:net'

import type {ProxyExit} from '../../config/types.js'
import {cidrContains, isValidCidr, normalizeIp} from '../address.js'

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})?(\.[a-z0-9_]([a-z0-9_-]{0,62})?)*\.?$/

export type ExitPattern =
  | {kind: 'any'}
  | {cidr: string; kind: 'cidr'; prefix: number}
  | {host: string; kind: 'host'}
  | {kind: 'suffix'; suffix: string}

/** `10.0.0.0/8`, `fd00::/8`, `10.1.2.3`, `db.internal`, `*.svc.cluster.local`, `*` → a pattern; garbage → undefined. */
export function parseExitPattern(text: string): ExitPattern | undefined {
  const value = text.trim().toLowerCase()
  if (value === '*') return {kind: 'any'}
  if (value.startsWith('*.')) return HOST_NAME.test(value.slice(2)) ? {kind: 'suffix', suffix: value.slice(1).replace(/\.$/, '')} : undefined
  const [address, bits] = value.split('/')
  const family = isIP(address ?? '')
  if (family !== 0) {
    if (!isValidCidr(value)) return undefined
    return {cidr: value, kind: 'cidr', prefix: bits === undefined ? (family === 4 ? 32 : 128) : Number(bits)}
  }

  return HOST_NAME.test(value) ? {host: value.replace(/\.$/, ''), kind: 'host'} : undefined
}

/** How specifically PATTERN matches HOST (a name or an IP literal): 0 = not at all; higher = more specific. */
export function matchScore(pattern: ExitPattern, host: string): number {
  const ip = isIP(normalizeIp(host)) !== 0
  const name = host.toLowerCase().replace(/\.$/, '')
  switch (pattern.kind) {
    case 'any': {
      return ip ? 0 : 1
    }

    case 'cidr': {
      return ip && cidrContains(pattern.cidr, normalizeIp(host)) ? 10 + pattern.prefix : 0
    }

    case 'host': {
      return !ip && name === pattern.host ? 2000 + name.length : 0
    }

    case 'suffix': {
      return !ip && name.endsWith(pattern.suffix) && name.length > pattern.suffix.length ? 1000 + pattern.suffix.length : 0
    }
  }
}

const parsed = new WeakMap<ProxyExit, {exclusions: ExitPattern[]; targets: ExitPattern[]}>()

function patternsOf(exit: ProxyExit): {exclusions: ExitPattern[]; targets: ExitPattern[]} {
  let entry = parsed.get(exit)
  if (!entry) {
    const parse = (list: string[]) => list.map((text) => parseExitPattern(text)).filter((pattern): pattern is ExitPattern => pattern !== undefined)
    entry = {exclusions: parse(exit.exclusions), targets: parse(exit.targets)}
    parsed.set(exit, entry)
  }

  return entry
}

/** How specifically EXIT serves HOST (0: not: no target matches, or an exclusion does). */
export function exitScore(exit: ProxyExit, host: string): number {
  const {exclusions, targets} = patternsOf(exit)
  if (exclusions.some((pattern) => matchScore(pattern, host) > 0)) return 0
  return Math.max(0, ...targets.map((pattern) => matchScore(pattern, host)))
}

/** The exits that serve HOST most specifically (several when they tie), or [] when none does. */
export function bestExits(exits: Iterable<ProxyExit>, host: string): ProxyExit[] {
  let best = 0
  let winners: ProxyExit[] = []
  for (const exit of exits) {
    const score = exitScore(exit, host)
    if (score === 0 || score < best) continue
    if (score > best) {
      best = score
      winners = []
    }

    winners.push(exit)
  }

  return winners
}

/** At the exit, after resolving: the excluded CIDR that holds ADDRESS, if one does. */
export function excludedAddress(exit: ProxyExit, address: string): string | undefined {
  const hit = patternsOf(exit).exclusions.find((pattern) => pattern.kind === 'cidr' && matchScore(pattern, address) > 0)
  return hit?.kind === 'cidr' ? hit.cidr : undefined
}

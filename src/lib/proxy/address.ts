// Address helpers shared by the data plane: `host:port` parsing (IPv6 in brackets), IP normalisation
// and CIDR matching. Pure functions over strings; they never throw on garbage, they return undefined.
import {isIP} from 'node:net'

export interface HostPort {
  host: string
  port: number
}

const HOST_NAME = /^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,251}[a-zA-Z0-9])?$/

/** `1.2.3.4:80`, `[::1]:80`, `name:80` → {host, port}; anything else → undefined. */
export function parseHostPort(text: unknown, defaultHost?: string): HostPort | undefined {
  if (typeof text !== 'string' || text.length > 300) return undefined
  let host: string
  let portText: string
  if (text.startsWith('[')) {
    const close = text.indexOf(']')
    if (close < 0 || text[close + 1] !== ':') return undefined
    host = text.slice(1, close)
    portText = text.slice(close + 2)
    if (isIP(host) !== 6) return undefined
  } else {
    const colon = text.lastIndexOf(':')
    if (colon < 0) return undefined
    host = text.slice(0, colon)
    portText = text.slice(colon + 1)
    if (host === '' && defaultHost !== undefined) host = defaultHost
    if (isIP(host) === 0 && !HOST_NAME.test(host)) return undefined
  }

  if (!/^\d{1,5}$/.test(portText)) return undefined
  const port = Number(portText)
  if (port > 65_535) return undefined
  return {host, port}
}

export function formatHostPort({host, port}: HostPort): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`
}

/** `::ffff:1.2.3.4` → `1.2.3.4`; other addresses unchanged. */
export function normalizeIp(address: string | undefined): string {
  if (!address) return ''
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address
}

/** The same endpoint whatever the spelling (`::ffff:` prefix, case of a name). */
export function sameHostPort(a: HostPort, b: HostPort): boolean {
  return a.port === b.port && normalizeIp(a.host).toLowerCase() === normalizeIp(b.host).toLowerCase()
}

function ipToBigInt(ip: string): {bits: number; value: bigint} | undefined {
  const family = isIP(ip)
  if (family === 4) {
    const value = ip.split('.').reduce((sum, part) => (sum << 8n) + BigInt(Number(part)), 0n)
    return {bits: 32, value}
  }

  if (family !== 6) return undefined
  let text = ip
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4) {
    const n = ipToBigInt(v4[1])!.value
    text = text.slice(0, v4.index) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`
  }

  const [head, tail] = text.split('::') as [string, string | undefined]
  const headGroups = head === '' ? [] : head.split(':')
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':')
  const missing = 8 - headGroups.length - tailGroups.length
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array.from({length: missing}, () => '0'), ...tailGroups]
  if (groups.length !== 8) return undefined
  const value = groups.reduce((sum, group) => (sum << 16n) + BigInt(Number.parseInt(group, 16)), 0n)
  return {bits: 128, value}
}

/** Whether IP lies in CIDR (`10.0.0.0/8`, `fd00::/8`, or a bare address). IPv4-mapped IPv6 counts as IPv4. */
export function cidrContains(cidr: string, ip: string): boolean {
  const [network, lengthText] = cidr.split('/') as [string, string | undefined]
  const net = ipToBigInt(normalizeIp(network))
  const address = ipToBigInt(normalizeIp(ip))
  if (!net || !address || net.bits !== address.bits) return false
  const length = lengthText === undefined ? net.bits : Number(lengthText)
  if (!Number.isInteger(length) || length < 0 || length > net.bits) return false
  const shift = BigInt(net.bits - length)
  return net.value >> shift === address.value >> shift
}

/** Whether a CIDR string is well formed (for config validation). */
export function isValidCidr(cidr: string): boolean {
  const [network, lengthText] = cidr.split('/') as [string, string | undefined]
  const net = ipToBigInt(network)
  if (!net) return false
  if (lengthText === undefined) return true
  const length = Number(lengthText)
  return /^\d{1,3}$/.test(lengthText) && length <= net.bits
}

/** An IP for HOST: itself when it is one, else the first address the resolver gives (the addon takes IPs only). */
export async function resolveHost(host: string): Promise<string> {
  if (isIP(host)) return host
  const {lookup} = await import('node:dns/promises')
  return (await lookup(host)).address
}

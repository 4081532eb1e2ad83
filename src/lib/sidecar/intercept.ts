// Intercept addresses of an inbound tunnel (`--intercept HOST|IP|CIDR[:PORT]`): what a tproxy sidecar
// captures for a service. Pure, never throws: configuration arrives over the network.
import {isIP} from 'node:net'

import {isValidCidr} from '../proxy/address.js'
import {canonicalName} from './addresses.js'

export type Intercept =
  /** an IPv4 address or CIDR, always written as a CIDR */
  | {cidr: string; kind: 'cidr'; port?: number}
  /** a DNS name the sidecar's resolver answers with a 100.64.0.0/10 address */
  | {host: string; kind: 'host'; port?: number}

const HOST_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/

/** `web.mesh`, `web.mesh:80`, `10.1.2.3`, `10.0.0.0/8:443` → an Intercept; anything else → undefined. */
export function parseIntercept(text: unknown): Intercept | undefined {
  if (typeof text !== 'string' || text.length > 300) return undefined
  const match = /^([^:]+)(?::(\d{1,5}))?$/.exec(text.trim())
  if (!match) return undefined
  const port = match[2] === undefined ? undefined : Number(match[2])
  if (port !== undefined && (port < 1 || port > 65_535)) return undefined
  const address = match[1]
  const [ip, bits] = address.split('/')
  if (isIP(ip) === 4) {
    if (!isValidCidr(address)) return undefined
    return {cidr: bits === undefined ? `${ip}/32` : `${ip}/${Number(bits)}`, kind: 'cidr', port}
  }

  const host = canonicalName(address)
  if (address.includes('/') || !HOST_NAME.test(host) || /^[\d.]+$/.test(host)) return undefined
  return {host, kind: 'host', port}
}

/** The canonical spelling stored in the configuration. */
export function formatIntercept(intercept: Intercept): string {
  const address = intercept.kind === 'cidr' ? (intercept.cidr.endsWith('/32') ? intercept.cidr.slice(0, -3) : intercept.cidr) : intercept.host
  return intercept.port === undefined ? address : `${address}:${intercept.port}`
}

// Parsing and validation of what users type for tunnels and policies. Every failure names the bad value
// and shows the expected form.
import {isIP} from 'node:net'

import {ExitCode, ZtError} from '../errors.js'
import {APP_NAMES, type Target} from '../config/types.js'
import {type HostPort, parseHostPort as parseAddress} from '../proxy/address.js'
import {formatIntercept, parseIntercept as readIntercept} from '../sidecar/intercept.js'

const SERVICE = /^(tcp|udp)\/[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/
const NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/

function usage(code: string, message: string, suggestion: string): ZtError {
  return new ZtError(code, message, {exit: ExitCode.usage, suggestion})
}

export function parseServiceName(text: string): string {
  if (SERVICE.test(text)) return text
  if (!text.includes('/') && NAME.test(text)) {
    throw usage('ZT_ERR_INVALID_SERVICE', `service "${text}" has no protocol`, `write it as tcp/${text}`)
  }

  throw usage(
    'ZT_ERR_INVALID_SERVICE',
    `"${text}" is not a service name`,
    'use tcp/NAME or udp/NAME, NAME of lower-case letters, digits, ".", "_" and "-"',
  )
}

/** A service a policy applies to: tcp/NAME, udp/NAME, `proxy` (every proxy exit) or an agent's app (app/terminal, app/file, app/script). */
export function parsePolicyService(text: string): string {
  if (text === 'proxy') return text
  if (text.startsWith('app/') && (APP_NAMES as readonly string[]).includes(text.slice(4))) return text
  if (text.startsWith('app/')) throw usage('ZT_ERR_INVALID_SERVICE', `"${text}" is not an app`, `the apps are ${APP_NAMES.map((app) => `app/${app}`).join(', ')}`)
  return parseServiceName(text)
}

export function parseName(text: string, what = 'name'): string {
  if (NAME.test(text)) return text
  throw usage(
    'ZT_ERR_INVALID_NAME',
    `"${text}" is not a valid ${what}`,
    'use 1–63 lower-case letters, digits, ".", "_" or "-", starting and ending with a letter or digit',
  )
}

function parsePort(text: string, whole: string): number {
  const port = Number(text)
  if (!/^\d+$/.test(text) || port < 1 || port > 65_535) {
    throw usage('ZT_ERR_INVALID_ADDRESS', `"${whole}" has no valid port (1–65535)`, 'write HOST:PORT, e.g. 127.0.0.1:8080')
  }

  return port
}

/** `host:port`, `[v6]:port`: the data plane's parser (proxy/address.ts), with errors in words and ports from 1. */
export function parseHostPort(text: string): HostPort {
  const address = parseAddress(text)
  if (!address) {
    throw usage('ZT_ERR_INVALID_ADDRESS', `"${text}" is not HOST:PORT`, 'write HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080')
  }

  if (address.port === 0) throw usage('ZT_ERR_INVALID_ADDRESS', `"${text}" has no valid port (1–65535)`, 'write HOST:PORT, e.g. 127.0.0.1:8080')
  return address
}

/** `HOST:PORT[@WEIGHT]` */
export function parseTarget(text: string): Target {
  const [address, weightText] = text.split('@')
  const target: Target = parseHostPort(address)
  if (weightText !== undefined) {
    const weight = Number(weightText)
    if (!Number.isInteger(weight) || weight < 1 || weight > 1000) {
      throw usage('ZT_ERR_INVALID_TARGET', `"${text}" has an invalid weight`, 'a weight is an integer 1–1000: HOST:PORT@3')
    }

    target.weight = weight
  }

  return target
}

/** `[IP:]PORT` → `ip:port`; the IP defaults to 127.0.0.1, so nothing listens beyond this host unless asked. */
export function parseListen(text: string): string {
  if (/^\d+$/.test(text)) return `127.0.0.1:${parsePort(text, text)}`
  const {host, port} = parseHostPort(text)
  if (!isIP(host)) {
    throw usage('ZT_ERR_INVALID_ADDRESS', `listen address "${host}" is not an IP address`, 'write [IP:]PORT, e.g. 127.0.0.1:8080')
  }

  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`
}

/** Kubernetes-style namespace / service account names (DNS subdomain). */
const K8S_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/

/** `@identity`, `#role`, `ns:NAMESPACE`, `sa:NAMESPACE/SERVICE_ACCOUNT` or a full `spiffe://…` ID */
export function parseSubject(text: string): string {
  if (/^[@#]/.test(text)) {
    parseName(text.slice(1), text.startsWith('@') ? 'identity name' : 'role')
    return text
  }

  if (text.startsWith('ns:') && K8S_NAME.test(text.slice(3))) return text
  if (text.startsWith('sa:')) {
    const [namespace, account, extra] = text.slice(3).split('/')
    if (extra === undefined && K8S_NAME.test(namespace ?? '') && K8S_NAME.test(account ?? '')) return text
  }

  if (/^spiffe:\/\/[a-z0-9.-]+\/\S{1,1024}$/.test(text)) return text
  throw usage(
    'ZT_ERR_INVALID_SUBJECT',
    `"${text}" names no identity, role, namespace, service account or SPIFFE ID`,
    `write @${text} for the identity, #${text} for the role, ns:NS, sa:NS/SA or spiffe://TD/ns/NS/sa/SA`,
  )
}

export function parseCidr(text: string): string {
  const [address, bitsText, extra] = text.split('/')
  const family = isIP(address ?? '')
  const max = family === 6 ? 128 : 32
  const bits = bitsText === undefined ? max : Number(bitsText)
  if (!family || extra !== undefined || !Number.isInteger(bits) || bits < 0 || bits > max) {
    throw usage('ZT_ERR_INVALID_CIDR', `"${text}" is not a CIDR`, 'write ADDRESS/BITS, e.g. 10.0.0.0/8 or fd00::/64')
  }

  return `${address}/${bits}`
}

export function parsePortNumber(text: string): number {
  return parsePort(text, text)
}

/** `HOST|IP|CIDR[:PORT]` (IPv4) → its canonical spelling; what a tproxy sidecar captures for a service. */
export function parseIntercept(text: string): string {
  const intercept = readIntercept(text)
  if (intercept) return formatIntercept(intercept)
  throw usage(
    'ZT_ERR_INVALID_INTERCEPT',
    `"${text}" is not an intercept address`,
    'write HOST, IP or CIDR with an optional :PORT, e.g. web.mesh:80, 10.0.0.5, 10.20.0.0/16:443 (IPv4 only)',
  )
}

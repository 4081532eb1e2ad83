// The agent's HTTP side doors, on separate listeners as in ztunnel: admin (15000, loopback by default:
// /config_dump, /logging, /logs, /quitquitquit), readiness (15021: /healthz/ready) and metrics (15020:
// /metrics, /stats/prometheus). Plain HTTP/1.1; every handler answers from in-memory state. A side door
// may be a Unix socket instead of a port (an agent with --no-listen): only its owner can use it.
// The admin listener answers local tools only: a browser on this host can be made to send requests to
// it (a cross-site form POST to /quitquitquit, DNS rebinding to read /config_dump), so a request naming
// a host that is not loopback, or coming from another origin, is refused before any route runs.
import {chmod, rm} from 'node:fs/promises'
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {type AddressInfo, createConnection, isIP} from 'node:net'

import {cidrContains, formatHostPort, type HostPort, normalizeIp} from '../address.js'
import {isLogLevel, LOG_LEVELS, type LogLevel} from './log.js'
import type {LogRing} from './log-ring.js'
import {listening} from '../../util/listening.js'

export interface AdminHandlers {
  configDump: () => unknown
  getLogLevel: () => string
  /** the recent log lines (GET /logs?tail=N&follow=1) */
  logs?: LogRing
  /** pending readiness conditions; empty = ready */
  pending: () => string[]
  quit: () => void
  renderMetrics: () => string
  setLogLevel: (level: LogLevel) => void
}

const MAX_FOLLOWER_BACKLOG = 1024 * 1024

type Route = (request: IncomingMessage, response: ServerResponse, url: URL) => void

function send(response: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  response.writeHead(status, {'content-length': Buffer.byteLength(body), 'content-type': type})
  response.end(body)
}

function methodNotAllowed(response: ServerResponse, allowed: string, help: string): void {
  response.setHeader('allow', allowed)
  send(response, 405, `${help}\n`)
}

export function adminRoutes(handlers: AdminHandlers): Record<string, Route> {
  return {
    '/config_dump'(request, response) {
      if (request.method !== 'GET') return methodNotAllowed(response, 'GET', 'usage: GET /config_dump')
      send(response, 200, JSON.stringify(handlers.configDump(), null, 2) + '\n', 'application/json')
    },
    '/logging'(request, response, url) {
      const help = `usage: POST /logging?level=<${LOG_LEVELS.join('|')}>`
      if (request.method !== 'POST') return methodNotAllowed(response, 'POST', help)
      const level = url.searchParams.get('level')
      if (level === null) return send(response, 200, `current log level is ${handlers.getLogLevel()}\n`)
      const normalized = level === 'off' ? 'silent' : level
      if (!isLogLevel(normalized)) return send(response, 400, `unknown level ${JSON.stringify(level.slice(0, 40))}; ${help}\n`)
      handlers.setLogLevel(normalized)
      send(response, 200, `current log level is ${handlers.getLogLevel()}\n`)
    },
    '/logs'(request, response, url) {
      const help = 'usage: GET /logs?tail=N&follow=1 (JSON lines)'
      if (request.method !== 'GET' || !handlers.logs) return methodNotAllowed(response, 'GET', help)
      const tail = Math.min(Number(url.searchParams.get('tail') ?? 100), 100_000)
      if (!Number.isSafeInteger(tail) || tail < 0) return send(response, 400, `tail must be a count; ${help}\n`)
      const follow = url.searchParams.get('follow') === '1'
      // A follower that does not read is cut off rather than buffered for.
      const stop = follow ? handlers.logs.follow((line) => (response.writableLength > MAX_FOLLOWER_BACKLOG ? response.destroy() : response.write(line))) : undefined
      if (follow && !stop) return send(response, 503, 'too many followers of /logs; try again later\n')
      response.writeHead(200, {'content-type': 'application/x-ndjson'})
      for (const line of handlers.logs.tail(tail)) response.write(line)
      if (!stop) return void response.end()
      response.once('close', stop)
    },
    '/quitquitquit'(request, response) {
      if (request.method !== 'POST') return methodNotAllowed(response, 'POST', 'usage: POST /quitquitquit')
      send(response, 200, 'OK\n')
      handlers.quit()
    },
  }
}

export function readinessRoutes(handlers: Pick<AdminHandlers, 'pending'>): Record<string, Route> {
  return {
    '/healthz/ready'(_request, response) {
      const pending = handlers.pending()
      if (pending.length === 0) send(response, 200, 'ready\n')
      else send(response, 500, `not ready, pending: ${pending.join(', ')}\n`)
    },
  }
}

export function metricsRoutes(handlers: Pick<AdminHandlers, 'renderMetrics'>): Record<string, Route> {
  const metrics: Route = (request, response) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return methodNotAllowed(response, 'GET', 'usage: GET /metrics')
    send(response, 200, handlers.renderMetrics(), 'text/plain; version=0.0.4; charset=utf-8')
  }

  return {'/metrics': metrics, '/stats/prometheus': metrics}
}

/** A socket path left by a process that died: removed when nothing answers on it (never a live one). */
async function removeStaleSocket(path: string): Promise<void> {
  const alive = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path)
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
  if (!alive) await rm(path, {force: true})
}

const isLoopback = (host: string): boolean =>
  host.toLowerCase() === 'localhost' || (isIP(host) !== 0 && (cidrContains('127.0.0.0/8', host) || normalizeIp(host) === '::1'))

/** `[::1]:15000` → `::1`, `localhost:15000` → `localhost`; undefined when it is no host[:port]. */
function hostOf(header: string): string | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]/]+))(?::\d{1,5})?$/.exec(header)
  return match ? (match[1] ?? match[2]) : undefined
}

/**
 * Why a request to the admin listener bound to BOUND_HOST is refused, or undefined: its Host must be a
 * loopback name or address (or the listener's own, when bound to one), any Origin must be the listener
 * itself, and a browser's Sec-Fetch-Site must not say cross-site.
 */
export function foreignRequest(request: IncomingMessage, boundHost: string): string | undefined {
  const hostHeader = request.headers.host ?? ''
  const host = hostOf(hostHeader)
  const ownAddress = isIP(boundHost) !== 0 && normalizeIp(boundHost) !== '0.0.0.0' && boundHost !== '::' && host !== undefined && normalizeIp(host) === normalizeIp(boundHost)
  if (!host || !(isLoopback(host) || ownAddress)) return `Host ${JSON.stringify(hostHeader.slice(0, 100))} is not a loopback address`
  const origin = request.headers.origin
  if (origin !== undefined && origin.toLowerCase() !== `http://${hostHeader.toLowerCase()}`) return `Origin ${JSON.stringify(origin.slice(0, 100))} is another site`
  const site = request.headers['sec-fetch-site']
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site ${JSON.stringify(String(site).slice(0, 40))}: a request from another site`
  return undefined
}

export interface ServeOptions {
  /** refuse foreign Host and Origin headers (the admin listener) */
  localOnly?: boolean
}

/** Serve ROUTES on ADDRESS (`host:port`, or a Unix socket path); resolves with the server and its bound address (`unix:PATH` for a socket). */
export async function serveRoutes(address: HostPort | {path: string}, routes: Record<string, Route>, options: ServeOptions = {}): Promise<{address: string; server: Server}> {
  const server = createServer((request, response) => {
    // A browser cannot reach a Unix socket: only a listener on a port needs the Host/Origin check.
    const refusal = options.localOnly && 'host' in address ? foreignRequest(request, address.host) : undefined
    if (refusal) return send(response, 403, `forbidden: ${refusal}; the admin endpoint answers local tools only (curl http://127.0.0.1:PORT/...)\n`)
    let url: URL
    try {
      url = new URL(request.url ?? '/', 'http://agent')
    } catch {
      return send(response, 400, 'bad request\n')
    }

    const route = Object.hasOwn(routes, url.pathname) ? routes[url.pathname] : undefined
    if (!route) return send(response, 404, `not found; try ${Object.keys(routes).join(', ')}\n`)
    route(request, response, url)
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
  if ('path' in address) await removeStaleSocket(address.path)
  await listening(server, (done) => ('path' in address ? server.listen(address.path, done) : server.listen(address.port, address.host, done)))
  if ('path' in address) {
    await chmod(address.path, 0o600)
    return {address: `unix:${address.path}`, server}
  }

  const bound = server.address() as AddressInfo
  return {address: formatHostPort({host: bound.address, port: bound.port}), server}
}

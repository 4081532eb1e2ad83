// The controller's one TLS port: HTTP/2 (and HTTP/1.1 for curl) with client certificates requested
// but not required; each route says which callers it accepts.
import http2, {type Http2ServerRequest, type Http2ServerResponse, type Http2Session} from 'node:http2'
import type net from 'node:net'
import type {AddressInfo, Socket} from 'node:net'
import type {TLSSocket} from 'node:tls'

import {ExitCode, ZtError} from '../errors.js'
import {boundedServerOptions, CONTROLLER_BOUNDS, guardHttp2Server} from '../http2/server-bounds.js'
import {listening} from '../util/listening.js'
import {appRoutes} from './routes/apps.js'
import {configRoutes} from './routes/config.js'
import {enrollmentRoutes} from './routes/enrollment.js'
import {identityRoutes} from './routes/identities.js'
import {kubeRoutes} from './routes/kube.js'
import {resourceRoutes} from './routes/resources.js'
import type {ControllerServices, Route} from './routes/types.js'
import {versionRoutes} from './routes/version.js'
import {workloadRoutes} from './routes/workloads.js'

const MAX_BODY_BYTES = 1024 * 1024
const DRAIN_TIMEOUT_MS = 3000
/** A request (not the config stream) must be read and answered within this time. */
const REQUEST_TIMEOUT_MS = 15_000

export interface ServerTls {
  /** CA bundle that client certificates must chain to */
  ca: string
  /** leaf followed by the chain */
  cert: string
  key: string
}

export interface ControllerServer {
  readonly address: {host: string; port: number}
  /** Stop accepting, end streams, let in-flight requests finish (bounded), then cut what is left. */
  close(): Promise<void>
  /** Swap the server certificate (renewal) without dropping connections. */
  setTls(tls: ServerTls): void
}

const ROUTES: readonly Route[] = [...versionRoutes, ...enrollmentRoutes, ...kubeRoutes, ...identityRoutes, ...resourceRoutes, ...configRoutes, ...workloadRoutes, ...appRoutes]

const STATUS_BY_EXIT: Record<number, number> = {
  [ExitCode.auth]: 401,
  [ExitCode.conflict]: 409,
  [ExitCode.failure]: 400,
  [ExitCode.notFound]: 404,
  [ExitCode.unreachable]: 503,
  [ExitCode.usage]: 400,
}

export async function startServer(services: ControllerServices, listen: {host: string; port: number}, tls: ServerTls): Promise<ControllerServer> {
  const server = http2.createSecureServer({
    ...boundedServerOptions(CONTROLLER_BOUNDS),
    allowHTTP1: true,
    ...tls,
    minVersion: 'TLSv1.2',
    rejectUnauthorized: false,
    requestCert: true,
  })
  const guard = guardHttp2Server(server, CONTROLLER_BOUNDS, {
    ended: (reason, remote) => services.logger.debug({reason, remote}, 'HTTP/2 session closed by the server\'s bounds'),
  })
  const sessions = new Set<Http2Session>()
  const sockets = new Set<Socket>()
  server.on('session', (session: Http2Session) => {
    sessions.add(session)
    session.on('close', () => sessions.delete(session))
  })
  server.on('secureConnection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  // Handshake failures (port scanners, clients that distrust us) are routine: log, never crash.
  server.on('tlsClientError', (error) => services.logger.debug({err: error.message}, 'TLS handshake failed'))
  server.on('sessionError', (error) => services.logger.debug({err: error.message}, 'HTTP/2 session error'))
  server.on('request', (request: Http2ServerRequest, response: Http2ServerResponse) => {
    handleRequest(services, request, response).catch((error: unknown) => {
      services.logger.error({err: (error as Error).stack}, 'request handler failed')
      response.destroy()
    })
  })

  await listenOn(server, listen, '--listen')
  const bound = server.address() as AddressInfo

  return {
    address: {host: bound.address, port: bound.port},
    async close() {
      services.hub.close()
      guard.close()
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const session of sessions) session.close()
      const timer = setTimeout(() => {
        for (const session of sessions) session.destroy()
        for (const socket of sockets) socket.destroy()
      }, DRAIN_TIMEOUT_MS)
      timer.unref()
      await closed
      clearTimeout(timer)
    },
    setTls(next) {
      server.setSecureContext({...next, minVersion: 'TLSv1.2'})
    },
  }
}

/** Listen, or explain in words why not (a taken port says so and what to do). */
export async function listenOn(server: net.Server, listen: {host: string; port: number}, flag: string): Promise<void> {
  await listening(server, (done) => server.listen(listen.port, listen.host, done)).catch((error: NodeJS.ErrnoException) => {
    throw new ZtError('ZT_ERR_LISTEN', `cannot listen on ${listen.host}:${listen.port} (${flag}): ${error.code ?? error.message}`, {
      cause: error,
      exit: error.code === 'EADDRINUSE' ? ExitCode.conflict : ExitCode.failure,
      suggestion: error.code === 'EADDRINUSE' ? `another process uses that port; pick another with ${flag} HOST:PORT (port 0 = any free port)` : undefined,
    })
  })
}

async function handleRequest(services: ControllerServices, request: Http2ServerRequest, response: Http2ServerResponse): Promise<void> {
  const started = Date.now()
  try {
    const {params, route} = matchRoute(request.method, request.url)
    if (!route.streaming) request.setTimeout(REQUEST_TIMEOUT_MS, () => request.destroy(new Error('request timed out')))
    const principal = route.access === 'anonymous' ? undefined : await authenticate(services, request, route.access)
    const body = route.streaming || request.method === 'GET' || request.method === 'DELETE' ? undefined : await readJsonBody(request)
    const result = await route.handle({body, params, principal, request, response, services})
    if (!route.streaming) sendJson(response, 200, result ?? {})
  } catch (error) {
    const zt = ZtError.is(error)
      ? error
      : new ZtError('ZT_ERR_INTERNAL', 'internal controller error (see the controller log)', {details: {}})
    if (!ZtError.is(error)) services.logger.error({err: (error as Error).stack, path: request.url}, 'request failed')
    const status = zt.code === 'ZT_ERR_FORBIDDEN' ? 403 : zt.code === 'ZT_ERR_INTERNAL' ? 500 : (STATUS_BY_EXIT[zt.exit] ?? 400)
    sendJson(response, status, {error: {code: zt.code, exit: zt.exit, message: zt.message, suggestion: zt.suggestion}})
  } finally {
    services.logger.debug({method: request.method, ms: Date.now() - started, path: request.url, status: response.statusCode}, 'request')
  }
}

function matchRoute(method: string, url: string): {params: Record<string, string>; route: Route} {
  const pathname = url.split('?')[0]
  const segments = pathname.split('/')
  let pathMatched = false
  for (const route of ROUTES) {
    const pattern = route.path.split('/')
    if (pattern.length !== segments.length) continue
    const params: Record<string, string> = {}
    const matches = pattern.every((part, index) => {
      if (!part.startsWith(':')) return part === segments[index]
      try {
        params[part.slice(1)] = decodeURIComponent(segments[index])
      } catch {
        return false
      }

      return segments[index] !== ''
    })
    if (!matches) continue
    pathMatched = true
    if (route.method === method) return {params, route}
  }

  if (pathMatched) throw new ZtError('ZT_ERR_BAD_REQUEST', `${method} is not allowed on ${pathname}`, {exit: ExitCode.usage})
  throw new ZtError('ZT_ERR_NOT_FOUND', `no API endpoint ${pathname}`, {exit: ExitCode.notFound})
}

async function authenticate(services: ControllerServices, request: Http2ServerRequest, access: 'admin' | 'identity') {
  const socket = (request.stream?.session?.socket ?? request.socket) as TLSSocket
  const peer = socket.getPeerCertificate?.()
  if (!peer || !peer.serialNumber) {
    throw new ZtError('ZT_ERR_UNAUTHORIZED', 'this endpoint needs a client certificate and none was presented', {
      exit: ExitCode.auth,
      suggestion: 'call it through ztctl with an enrolled identity (`ztctl context show`)',
    })
  }

  const principal = socket.authorized ? await services.store.authenticate(peer.serialNumber, new Date()) : undefined
  if (!principal) {
    throw new ZtError('ZT_ERR_UNAUTHORIZED', 'the client certificate is not valid here: unknown, expired or revoked', {
      exit: ExitCode.auth,
      suggestion: 'an expired admin: on the controller\'s host run `ztctl controller admin --data-dir DATA_DIR`; otherwise enroll a new identity (`ztctl enroll NAME.jwt`); a deleted identity cannot come back',
    })
  }

  if (access === 'admin' && !principal.identity.admin) {
    throw new ZtError('ZT_ERR_FORBIDDEN', `identity "${principal.identity.name}" is not an admin`, {
      exit: ExitCode.auth,
      suggestion: 'use the admin identity that `ztctl controller run` wrote (see `ztctl context show`)',
    })
  }

  return principal
}

async function readJsonBody(request: Http2ServerRequest): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw new ZtError('ZT_ERR_BAD_REQUEST', `the request body exceeds ${MAX_BODY_BYTES} bytes`, {exit: ExitCode.usage})
    chunks.push(chunk)
  }

  if (size === 0) return undefined
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new ZtError('ZT_ERR_BAD_REQUEST', 'the request body is not valid JSON', {exit: ExitCode.usage})
  }
}

function sendJson(response: Http2ServerResponse, status: number, body: unknown): void {
  if (response.headersSent || response.destroyed) return
  const text = JSON.stringify(body)
  response.writeHead(status, {'content-length': Buffer.byteLength(text), 'content-type': 'application/json'})
  response.end(text)
}

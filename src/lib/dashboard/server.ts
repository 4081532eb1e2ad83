// `ztctl dashboard`: a local web page over the mesh, served by the CLI process, which holds the admin
// identity (the browser never sees the key). Static files built into dist/dashboard/, a JSON + server-sent
// events API under /api/, every request checked by the AccessGuard. Loopback only unless asked otherwise.
import {readdir, readFile} from 'node:fs/promises'
import http, {type IncomingMessage, type ServerResponse} from 'node:http'
import type {AddressInfo} from 'node:net'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {ExitCode, type ExitCodeValue, ZtError} from '../errors.js'
import {parseHostPort, parseListen} from '../mesh/parse.js'
import {listening} from '../util/listening.js'
import {createPolicyAction, deletePolicyAction, explainAction, revokeIdentityAction} from './actions.js'
import {type CollectorOptions, MeshCollector} from './collect.js'
import {AccessGuard, type Session} from './guard.js'
import {LiveFeed} from './live.js'
import type {ErrorBody} from './model.js'

const MAX_BODY_BYTES = 64 * 1024
/** Both src/lib/dashboard/ (tests) and dist/lib/dashboard/ are three folders below the package root. */
export const DEFAULT_ASSETS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../dist/dashboard')

export interface DashboardOptions extends CollectorOptions {
  /** listen on an address that is not loopback (anyone who gets the URL can act as admin) */
  allowRemote?: boolean
  assetsDir?: string
  intervalMs?: number
  /** `[IP:]PORT`; port 0 picks a free one */
  listen: string
  /** a round that failed, or a bug in a request handler */
  onError?: (error: unknown) => void
}

export interface Dashboard {
  /** `ip:port` it listens on */
  address: string
  close(): Promise<void>
  /** the URL to open, with this run's token */
  url: string
}

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
}

const TYPES: Record<string, string> = {
  '.css': 'text/css; charset=utf-8', '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.png': 'image/png', '.svg': 'image/svg+xml',
}

const STATUS: Partial<Record<ExitCodeValue, number>> = {
  [ExitCode.auth]: 403, [ExitCode.conflict]: 409, [ExitCode.notFound]: 404, [ExitCode.unreachable]: 502, [ExitCode.usage]: 400,
}

type Assets = Map<string, {body: Buffer; type: string}>
type Action = (body: unknown) => Promise<unknown>

function send(response: ServerResponse, status: number, body: Buffer | string, type: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, {...SECURITY_HEADERS, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body), 'content-type': type, ...headers})
  response.end(body)
}

const sendJson = (response: ServerResponse, status: number, value: unknown): void => send(response, status, JSON.stringify(value), 'application/json; charset=utf-8')

function sendError(response: ServerResponse, error: unknown): boolean {
  if (!ZtError.is(error)) {
    sendJson(response, 500, {error: {code: 'ZT_ERR_INTERNAL', message: 'the dashboard failed on this request; its terminal shows why'}} satisfies ErrorBody)
    return false
  }

  sendJson(response, STATUS[error.exit] ?? 500, {error: {code: error.code, message: error.message, suggestion: error.suggestion}} satisfies ErrorBody)
  return true
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  if (!/^application\/json\b/.test(request.headers['content-type'] ?? '')) {
    throw new ZtError('ZT_ERR_BAD_REQUEST', 'send JSON (content-type: application/json)', {exit: ExitCode.usage})
  }

  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY_BYTES) throw new ZtError('ZT_ERR_BAD_REQUEST', `the request body exceeds ${MAX_BODY_BYTES} bytes`, {exit: ExitCode.usage})
    chunks.push(chunk as Buffer)
  }

  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new ZtError('ZT_ERR_BAD_REQUEST', 'the request body is not JSON', {exit: ExitCode.usage})
  }
}

async function loadAssets(dir: string): Promise<Assets> {
  const names = await readdir(dir).catch(() => {
    throw new ZtError('ZT_ERR_DASHBOARD_NOT_BUILT', `the dashboard's page is not built (no ${dir})`, {suggestion: 'run `npm run build`'})
  })
  const assets: Assets = new Map()
  for (const name of names) {
    const type = TYPES[path.extname(name)]
    if (type) assets.set(`/${name}`, {body: await readFile(path.join(dir, name)), type})
  }

  if (!assets.has('/index.html')) throw new ZtError('ZT_ERR_DASHBOARD_NOT_BUILT', `${dir} has no index.html`, {suggestion: 'run `npm run build`'})
  return assets
}

const isLoopback = (host: string): boolean => host === '::1' || /^127\./.test(host)

/** The Host header values that name an address: the IP as bound, and `localhost` for loopback. */
function hostNames(host: string, port: number): Set<string> {
  const names = new Set([host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`])
  if (isLoopback(host)) names.add(`localhost:${port}`)
  return names
}

async function listen(server: http.Server, host: string, port: number): Promise<number> {
  await listening(server, (done) => server.listen(port, host, done)).catch((error: NodeJS.ErrnoException) => {
    const exit = error.code === 'EADDRINUSE' ? ExitCode.conflict : ExitCode.failure
    throw new ZtError('ZT_ERR_LISTEN', `cannot listen on ${host}:${port}: ${error.code ?? error.message}`, {
      cause: error, exit, suggestion: 'pass another --listen, e.g. --listen 127.0.0.1:0 for any free port',
    })
  })
  return (server.address() as AddressInfo).port
}

/** Every request: the guard first, then the page (a token exchange opens a session), changes, the event stream, files. */
function requestHandler({actions, assets, feed, guard}: {actions: Record<string, Action>; assets: Assets; feed: LiveFeed; guard: AccessGuard}) {
  const page = (session: Session): string =>
    assets.get('/index.html')!.body.toString('utf8').replace('<meta name="ztctl-csrf" content="">', `<meta name="ztctl-csrf" content="${session.csrf}">`)

  return async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const url = new URL(request.url ?? '/', 'http://dashboard')
    const verdict = guard.check(request, url)
    if (!verdict.ok) return send(response, 403, `403 Forbidden: ${verdict.reason}\n`, 'text/plain; charset=utf-8')
    if (url.pathname === '/' && request.method === 'GET') {
      if (verdict.session) return send(response, 200, page(verdict.session), TYPES['.html'])
      const {cookie, session} = guard.openSession()
      return send(response, 200, page(session), TYPES['.html'], {'set-cookie': cookie})
    }

    const action = Object.hasOwn(actions, url.pathname) ? actions[url.pathname] : undefined
    if (action) {
      const change = guard.checkChange(request, verdict.session)
      if (!change.ok) return send(response, 403, `403 Forbidden: ${change.reason}\n`, 'text/plain; charset=utf-8')
      const result = await action(await readJson(request))
      sendJson(response, 200, result)
      void feed.refresh().catch(() => {})
      return
    }

    if (request.method !== 'GET' && request.method !== 'HEAD') return send(response, 405, 'this path is read-only\n', 'text/plain; charset=utf-8', {allow: 'GET'})
    if (url.pathname === '/api/events') {
      if (!feed.subscribe(response)) send(response, 429, 'too many open dashboard pages\n', 'text/plain; charset=utf-8')
      return
    }

    if (url.pathname === '/api/snapshot') return send(response, 200, await feed.current(), 'application/json; charset=utf-8')
    const asset = url.pathname === '/index.html' ? undefined : assets.get(url.pathname)
    if (asset) return send(response, 200, asset.body, asset.type, {'cache-control': 'no-cache'})
    send(response, 404, 'not found\n', 'text/plain; charset=utf-8')
  }
}

export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const {host, port: requested} = parseDashboardListen(options.listen)
  if (!isLoopback(host) && !options.allowRemote) {
    throw new ZtError('ZT_ERR_NOT_LOOPBACK', `${options.listen} is not a loopback address: whoever opens the page acts as ${options.self.name}`, {
      exit: ExitCode.usage,
      suggestion: 'listen on 127.0.0.1 and reach it through an SSH tunnel (ssh -L), or pass --allow-remote if you really mean it',
    })
  }

  const assets = await loadAssets(options.assetsDir ?? DEFAULT_ASSETS_DIR)
  const onError = options.onError ?? (() => {})
  const collector = new MeshCollector(options)
  const feed = new LiveFeed(() => collector.collect(), options.intervalMs ?? 2000, onError)
  const actions: Record<string, Action> = {
    '/api/explain': (body) => explainAction(options.api, body),
    '/api/identities/revoke': (body) => revokeIdentityAction(options.api, body, options.self.name),
    '/api/policies': (body) => createPolicyAction(options.api, body),
    '/api/policies/delete': (body) => deletePolicyAction(options.api, body),
  }

  // The handler is attached once the port, and so the Host names the guard accepts, are known.
  const server = http.createServer()
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
  server.maxConnections = 64
  const port = await listen(server, host, requested)
  const guard = new AccessGuard(hostNames(host, port), port)
  const handle = requestHandler({actions, assets, feed, guard})
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    handle(request, response).catch((error: unknown) => {
      if (response.headersSent) response.destroy()
      else if (!sendError(response, error)) onError(error)
    })
  })
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
  return {
    address,
    async close() {
      feed.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
    url: `http://${address}/?token=${guard.token}`,
  }
}

/** `[IP:]PORT` as the CLI's --listen flags take it (an IP, loopback by default), with port 0 for any free one. */
function parseDashboardListen(text: string): {host: string; port: number} {
  const anyPort = /(^|:)0$/.test(text)
  const {host, port} = parseHostPort(parseListen(anyPort ? text.replace(/0$/, '1') : text))
  return {host, port: anyPort ? 0 : port}
}

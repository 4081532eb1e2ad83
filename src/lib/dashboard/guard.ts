// Who may use the dashboard: the browser that opened the URL with this run's token (Jupyter style). The
// token is exchanged for a session cookie (HttpOnly, SameSite=Strict, named after the port: cookies are not
// port-isolated); every request must carry one of our Host names (DNS rebinding) and, when it has an Origin,
// ours; a change must be a same-origin POST with the session's CSRF token in a header.
import {randomBytes, timingSafeEqual} from 'node:crypto'
import type {IncomingMessage} from 'node:http'

const MAX_SESSIONS = 32
export const CSRF_HEADER = 'x-ztctl-csrf'

export interface Session {
  csrf: string
  id: string
}

export type Verdict = {ok: false; reason: string} | {ok: true; session?: Session}

const secret = (): string => randomBytes(32).toString('base64url')

function sameSecret(expected: string, candidate: unknown): boolean {
  if (typeof candidate !== 'string' || candidate.length !== expected.length) return false
  return timingSafeEqual(Buffer.from(candidate), Buffer.from(expected))
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=')
    if (key === name) return value.join('=')
  }

  return undefined
}

export class AccessGuard {
  readonly cookieName: string
  readonly token = secret()
  private readonly sessions = new Map<string, Session>()

  /** HOSTS: the Host header values that name this server, e.g. `127.0.0.1:8080`, `localhost:8080`. */
  constructor(private readonly hosts: ReadonlySet<string>, port: number) {
    this.cookieName = `ztctl_dashboard_${port}`
  }

  /** A new session for a browser that showed the token; the oldest session goes past MAX_SESSIONS. */
  openSession(): {cookie: string; session: Session} {
    const session = {csrf: secret(), id: secret()}
    this.sessions.set(session.id, session)
    if (this.sessions.size > MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!)
    return {cookie: `${this.cookieName}=${session.id}; HttpOnly; SameSite=Strict; Path=/`, session}
  }

  tokenMatches(candidate: null | string | undefined): boolean {
    return sameSecret(this.token, candidate)
  }

  /** Checks that apply before any route: Host, Origin, fetch metadata, then the session (or a token exchange). */
  check(request: IncomingMessage, url: URL): Verdict {
    const host = request.headers.host?.toLowerCase()
    if (!host || !this.hosts.has(host)) return {ok: false, reason: `unexpected Host header ${JSON.stringify(host ?? '')}: open the dashboard at the address it printed`}
    const {origin} = request.headers
    if (origin !== undefined && origin !== `http://${host}`) return {ok: false, reason: `requests from ${origin} are not allowed`}
    const site = request.headers['sec-fetch-site']
    // A navigation may come from anywhere (a link, the address bar); it changes nothing and its answer is not readable cross-site.
    const navigation = request.method === 'GET' && request.headers['sec-fetch-mode'] === 'navigate'
    if (site !== undefined && site !== 'same-origin' && !navigation) return {ok: false, reason: `a ${site} request is not allowed`}
    const id = cookieValue(request.headers.cookie, this.cookieName)
    const session = id === undefined ? undefined : this.sessions.get(id)
    if (session) return {ok: true, session}
    if (request.method === 'GET' && url.pathname === '/' && this.tokenMatches(url.searchParams.get('token'))) return {ok: true}
    return {ok: false, reason: 'this dashboard needs its token: open the URL `ztctl dashboard` printed (…/?token=…)'}
  }

  /** A change: POST, with an Origin (browsers always send one on POST) and the session's CSRF token. */
  checkChange(request: IncomingMessage, session: Session | undefined): Verdict {
    if (request.method !== 'POST') return {ok: false, reason: 'changes are POST requests'}
    if (request.headers.origin === undefined) return {ok: false, reason: 'a change needs an Origin header'}
    if (!session || !sameSecret(session.csrf, request.headers[CSRF_HEADER])) return {ok: false, reason: `a change needs the page's ${CSRF_HEADER} header`}
    return {ok: true, session}
  }
}

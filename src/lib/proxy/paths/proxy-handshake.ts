// The handshake of the proxy listener (`ztctl proxy open`): SOCKS5 (RFC 1928: CONNECT with IPv4, IPv6 or a
// domain name, resolved at the exit; RFC 1929 username/password when the listener has users) and HTTP
// proxying (CONNECT, and absolute-URI requests, rewritten to origin form with `Connection: close`) on one
// port, told apart by the first byte. A state machine over one bounded buffer (JoshGlazebrook/socks'
// shape): `push` appends what arrived and advances as far as the bytes allow; every step says what to
// do next (wait for more, check a password, connect, fail), with the bytes to send the client first.
// Garbage ends in `fail` with a reason, never a throw.
export type ProxyProtocol = 'http-connect' | 'http-forward' | 'socks5'

/** What the caller does next; SEND goes to the client first (a SOCKS method selection, an auth answer). */
export type HandshakeStep = (
  | {kind: 'auth'; password: string; user: string}
  | {
      host: string
      kind: 'connect'
      /** what the client sent beyond the handshake (and, for a forwarded request, its rewritten head first) */
      prefix: Buffer
      port: number
      protocol: ProxyProtocol
      /** what the client must read once the exit answered 200 (empty for a forwarded request) */
      reply: Buffer
    }
  | {kind: 'fail'; reason: string}
  | {kind: 'more'}
) & {send?: Buffer}

/** Bytes a handshake may take before it must be complete: a SOCKS5 greeting and request fit in 600. */
export const MAX_HANDSHAKE_BYTES = 16 * 1024

const enum State {
  Detect,
  SocksGreeting,
  SocksAuth,
  SocksAuthPending,
  SocksRequest,
  HttpHead,
  HttpAuthPending,
  Done,
}

/** SOCKS5 reply codes (RFC 1928 §6). */
export const SOCKS_REPLY = {
  addressType: 0x08,
  commandNotSupported: 0x07,
  connectionRefused: 0x05,
  general: 0x01,
  hostUnreachable: 0x04,
  networkUnreachable: 0x03,
  notAllowed: 0x02,
  success: 0x00,
  ttlExpired: 0x06,
} as const

export function socksReply(code: number): Buffer {
  return Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0])
}

export function httpReply(status: number, text: string, body = '', headers: Record<string, string> = {}): Buffer {
  const lines = [`HTTP/1.1 ${status} ${text}`, ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)]
  if (status !== 200) lines.push('Content-Type: text/plain; charset=utf-8', `Content-Length: ${Buffer.byteLength(body) + (body ? 1 : 0)}`, 'Connection: close')
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body ? `${body}\n` : ''}`)
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const HOST = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]{1,253})$/
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'upgrade'])

export class ProxyHandshake {
  private buffer: Buffer = Buffer.alloc(0)
  private state = State.Detect
  /** replies produced on the way to the next step */
  private outgoing: Buffer[] = []
  /** the parsed request while a password is checked */
  private pending?: Extract<HandshakeStep, {kind: 'connect'}>

  constructor(private readonly options: {auth: boolean; maxBytes?: number}) {}

  /** Append CHUNK and advance. */
  push(chunk: Buffer): HandshakeStep {
    if (this.state === State.Done) return {kind: 'fail', reason: 'bytes after the handshake'}
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    if (this.buffer.length > (this.options.maxBytes ?? MAX_HANDSHAKE_BYTES)) {
      return this.fail(`the handshake is longer than ${this.options.maxBytes ?? MAX_HANDSHAKE_BYTES} bytes`, this.state === State.HttpHead ? httpReply(431, 'Request Header Fields Too Large', 'the request head is too large') : undefined)
    }

    return this.advance()
  }

  /** The password check's outcome, after an `auth` step. */
  authenticated(ok: boolean): HandshakeStep {
    if (this.state === State.SocksAuthPending) {
      if (!ok) return this.fail('wrong username or password', Buffer.from([0x01, 0x01]))
      this.outgoing.push(Buffer.from([0x01, 0x00]))
      this.state = State.SocksRequest
      return this.advance()
    }

    if (this.state === State.HttpAuthPending && this.pending) {
      if (!ok) return this.fail('wrong username or password', httpReply(407, 'Proxy Authentication Required', 'wrong username or password', {'Proxy-Authenticate': 'Basic realm="ztctl"'}))
      // What the client sent while its password was checked follows the request.
      const step = {...this.pending, prefix: Buffer.concat([this.pending.prefix, this.buffer])}
      this.state = State.Done
      this.buffer = Buffer.alloc(0)
      this.pending = undefined
      return step
    }

    return {kind: 'fail', reason: 'no password check was asked for'}
  }

  private advance(): HandshakeStep {
    for (;;) {
      const step = this.step()
      if (step === undefined) continue
      if (this.outgoing.length === 0) return step
      const send = Buffer.concat([...this.outgoing, step.send ?? Buffer.alloc(0)])
      this.outgoing = []
      return {...step, send}
    }
  }

  /** One transition; undefined: the state changed, go on. */
  private step(): HandshakeStep | undefined {
    const data = this.buffer
    switch (this.state) {
      case State.Detect: {
        if (data.length === 0) return {kind: 'more'}
        if (data[0] === 0x05) this.state = State.SocksGreeting
        else if (data[0] === 0x04) return this.fail('SOCKS4 is not supported', Buffer.from([0x00, 0x5B, 0, 0, 0, 0, 0, 0]))
        else if (data[0]! >= 0x41 && data[0]! <= 0x5A) this.state = State.HttpHead
        else return this.fail(`not SOCKS5 nor HTTP (first byte 0x${data[0]!.toString(16).padStart(2, '0')})`)
        return undefined
      }

      case State.SocksGreeting: {
        if (data.length < 2) return {kind: 'more'}
        const count = data[1]!
        if (data.length < 2 + count) return {kind: 'more'}
        const methods = data.subarray(2, 2 + count)
        this.consume(2 + count)
        const wanted = this.options.auth ? 0x02 : 0x00
        if (!methods.includes(wanted)) {
          return this.fail(this.options.auth ? 'the client offers no username/password authentication, which this proxy requires' : 'the client offers no "no authentication" method', Buffer.from([0x05, 0xFF]))
        }

        this.outgoing.push(Buffer.from([0x05, wanted]))
        this.state = this.options.auth ? State.SocksAuth : State.SocksRequest
        return undefined
      }

      case State.SocksAuth: {
        if (data.length < 2) return {kind: 'more'}
        if (data[0] !== 0x01) return this.fail('bad username/password sub-negotiation version', Buffer.from([0x01, 0x01]))
        const userLength = data[1]!
        if (data.length < 3 + userLength) return {kind: 'more'}
        const passwordLength = data[2 + userLength]!
        if (data.length < 3 + userLength + passwordLength) return {kind: 'more'}
        const user = data.toString('utf8', 2, 2 + userLength)
        const password = data.toString('utf8', 3 + userLength, 3 + userLength + passwordLength)
        this.consume(3 + userLength + passwordLength)
        this.state = State.SocksAuthPending
        return {kind: 'auth', password, user}
      }

      case State.SocksAuthPending:
      case State.HttpAuthPending: {
        return {kind: 'more'}
      }

      case State.SocksRequest: {
        return this.socksRequest(data)
      }

      case State.HttpHead: {
        return this.httpHead(data)
      }

      case State.Done: {
        return {kind: 'fail', reason: 'bytes after the handshake'}
      }
    }
  }

  private socksRequest(data: Buffer): HandshakeStep {
    if (data.length < 5) return {kind: 'more'}
    if (data[0] !== 0x05) return this.fail('bad SOCKS request version', socksReply(SOCKS_REPLY.general))
    const type = data[3]!
    let host: string
    let offset: number
    if (type === 0x01) {
      if (data.length < 10) return {kind: 'more'}
      host = [...data.subarray(4, 8)].join('.')
      offset = 8
    } else if (type === 0x04) {
      if (data.length < 22) return {kind: 'more'}
      const groups = Array.from({length: 8}, (_, index) => data.readUInt16BE(4 + index * 2).toString(16))
      host = groups.join(':')
      offset = 20
    } else if (type === 0x03) {
      const length = data[4]!
      if (data.length < 5 + length + 2) return {kind: 'more'}
      host = data.toString('latin1', 5, 5 + length)
      offset = 5 + length
      if (length === 0 || !HOST.test(host)) return this.fail(`bad domain name ${JSON.stringify(host.slice(0, 64))}`, socksReply(SOCKS_REPLY.hostUnreachable))
    } else {
      return this.fail(`unknown SOCKS address type ${type}`, socksReply(SOCKS_REPLY.addressType))
    }

    if (data[1] !== 0x01) return this.fail(`SOCKS command ${data[1]} is not supported (only CONNECT)`, socksReply(SOCKS_REPLY.commandNotSupported))
    const port = data.readUInt16BE(offset)
    if (port === 0) return this.fail('port 0', socksReply(SOCKS_REPLY.hostUnreachable))
    const prefix = Buffer.from(data.subarray(offset + 2))
    this.buffer = Buffer.alloc(0)
    this.state = State.Done
    return {host, kind: 'connect', prefix, port, protocol: 'socks5', reply: socksReply(SOCKS_REPLY.success)}
  }

  private httpHead(data: Buffer): HandshakeStep {
    const end = data.indexOf('\r\n\r\n')
    if (end < 0) return {kind: 'more'}
    const lines = data.toString('latin1', 0, end).split('\r\n')
    const [method, target, version, extra] = lines[0]!.split(' ')
    const bad = (reason: string): HandshakeStep => this.fail(reason, httpReply(400, 'Bad Request', reason))
    if (!method || !TOKEN.test(method) || !target || !/^HTTP\/1\.[01]$/.test(version ?? '') || extra !== undefined) return bad('not an HTTP/1.x request line')
    const headers: [string, string][] = []
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':')
      const name = line.slice(0, colon)
      if (colon <= 0 || !TOKEN.test(name) || /[\0\r\n]/.test(line)) return bad('a malformed header line')
      headers.push([name, line.slice(colon + 1).trim()])
    }

    const rest = Buffer.from(data.subarray(end + 4))
    let step: Extract<HandshakeStep, {kind: 'connect'}>
    if (method === 'CONNECT') {
      const authority = parseAuthority(target, undefined)
      if (!authority) return bad(`CONNECT needs HOST:PORT, got ${JSON.stringify(target.slice(0, 64))}`)
      step = {...authority, kind: 'connect', prefix: rest, protocol: 'http-connect', reply: httpReply(200, 'Connection established')}
    } else {
      if (!/^http:\/\//i.test(target)) {
        return bad(/^https:\/\//i.test(target) ? 'https URLs go through CONNECT (curl -x does that by itself)' : 'this is a proxy: send an absolute http:// URL, or CONNECT')
      }

      const slash = target.indexOf('/', 7)
      const authority = parseAuthority(target.slice(7, slash < 0 ? undefined : slash), 80)
      if (!authority) return bad(`bad URL ${JSON.stringify(target.slice(0, 64))}`)
      const path = slash < 0 ? '/' : target.slice(slash)
      const kept = headers.filter(([name]) => !HOP_BY_HOP.has(name.toLowerCase()))
      if (!kept.some(([name]) => name.toLowerCase() === 'host')) kept.unshift(['Host', target.slice(7, slash < 0 ? undefined : slash)])
      const head = [`${method} ${path} ${version}`, ...kept.map(([name, value]) => `${name}: ${value}`), 'Connection: close'].join('\r\n') + '\r\n\r\n'
      step = {...authority, kind: 'connect', prefix: Buffer.concat([Buffer.from(head, 'latin1'), rest]), protocol: 'http-forward', reply: Buffer.alloc(0)}
    }

    this.buffer = Buffer.alloc(0)
    if (!this.options.auth) {
      this.state = State.Done
      return step
    }

    const credentials = basicCredentials(headers.find(([name]) => name.toLowerCase() === 'proxy-authorization')?.[1])
    if (!credentials) return this.fail('no Proxy-Authorization: Basic credentials', httpReply(407, 'Proxy Authentication Required', 'this proxy needs a username and password', {'Proxy-Authenticate': 'Basic realm="ztctl"'}))
    this.pending = step
    this.state = State.HttpAuthPending
    return {kind: 'auth', ...credentials}
  }

  private consume(count: number): void {
    this.buffer = this.buffer.subarray(count)
  }

  private fail(reason: string, reply?: Buffer): HandshakeStep {
    this.state = State.Done
    this.buffer = Buffer.alloc(0)
    return {kind: 'fail', reason, send: reply}
  }
}

/** `host:port`, `[v6]:port`, or `host` with DEFAULT_PORT. */
function parseAuthority(text: string, defaultPort: number | undefined): {host: string; port: number} | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(text)
  if (!match) return undefined
  const host = match[1]!.replace(/^\[|\]$/g, '')
  const port = match[2] === undefined ? defaultPort : Number(match[2])
  if (port === undefined || port < 1 || port > 65_535 || !HOST.test(match[1]!)) return undefined
  return {host, port}
}

function basicCredentials(value: string | undefined): {password: string; user: string} | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]{1,1024})$/i.exec(value ?? '')
  if (!match) return undefined
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  return colon < 0 ? undefined : {password: decoded.slice(colon + 1), user: decoded.slice(0, colon)}
}

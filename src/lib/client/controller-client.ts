// The controller API client: one HTTP/2 session over mutual TLS (the identity file's key and
// certificate, trusting only its CA bundle), reused across calls until close(). Error bodies become
// the controller's ZtErrors again; connection failures become ZT_ERR_CONTROLLER_UNREACHABLE naming the URL.
import http2, {type ClientHttp2Session, type ClientHttp2Stream} from 'node:http2'
import type {PeerCertificate, TLSSocket} from 'node:tls'

import {controllerSpiffe} from '../controller/routes/types.js'
import {describeSystemError, ExitCode, ZtError, ztErrorFromJson} from '../errors.js'
import type {IdentityFile} from '../identity/file.js'
import type {ControllerApi, Method} from '../mesh/api.js'
import {spiffeFromSubjectAltName, trustDomainOf} from '../pki/cert-info.js'

const MAX_RESPONSE_BYTES = 16 * 1024 * 1024
export const DEFAULT_TIMEOUT_MS = 10_000

export interface ControllerClientOptions {
  /** PEM bundle to trust; omitted together with `insecure` only by `enroll`, which pins by fingerprint */
  ca?: string
  cert?: string
  /** skip CA verification: the caller verifies the presented chain itself (enrollment) */
  insecure?: boolean
  key?: string
  /**
   * The controller's SPIFFE ID, checked in the TLS handshake (after the chain was verified against `ca`):
   * a certificate of the mesh that is not the controller's ends the handshake before anything is sent.
   * It replaces the host name check.
   */
  serverSpiffe?: string
  /** per request, and for connecting */
  timeoutMs?: number
  url: string
}

/** The error checkServerIdentity returns when the server is someone else of the mesh. */
const IMPOSTOR = 'ZT_ERR_CONTROLLER_IMPOSTOR'

function pinServerSpiffe(expected: string) {
  return (_host: string, cert: PeerCertificate): Error | undefined => {
    const presented = spiffeFromSubjectAltName(cert.subjectaltname)
    if (presented === expected) return undefined
    return Object.assign(new Error(`it presented ${presented ?? 'no SPIFFE ID'}, not the controller's ${expected}`), {code: IMPOSTOR, presented})
  }
}

const TLS_TRUST_ERRORS = new Set([
  'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'ERR_TLS_CERT_ALTNAME_INVALID', 'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_SIGNATURE_FAILURE',
])

export class ControllerClient implements ControllerApi {
  private connecting?: Promise<ClientHttp2Session>
  private session?: ClientHttp2Session
  private readonly timeoutMs: number

  constructor(private readonly options: ControllerClientOptions) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  }

  /** A client authenticated as IDENTITY, trusting its CA bundle and pinning the controller of its trust domain. */
  static fromIdentity(identity: Pick<IdentityFile, 'ca' | 'cert' | 'controller' | 'key' | 'spiffe'>, timeoutMs?: number): ControllerClient {
    const trustDomain = trustDomainOf(identity.spiffe)
    return new ControllerClient({
      ca: identity.ca, cert: identity.cert, key: identity.key, serverSpiffe: trustDomain && controllerSpiffe(trustDomain), timeoutMs, url: identity.controller,
    })
  }

  get url(): string {
    return this.options.url
  }

  async request<T>(method: Method, path: string, body?: unknown): Promise<T> {
    const session = await this.connect()
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    let stream: ClientHttp2Stream
    try {
      stream = session.request({
        ':method': method, ':path': path, accept: 'application/json',
        ...(payload ? {'content-length': payload.length, 'content-type': 'application/json'} : {}),
      }, {endStream: payload === undefined})
    } catch (error) {
      // The session went away between connect() and now (GOAWAY, reset): the controller is not there.
      throw this.unreachable(error)
    }

    if (payload) stream.end(payload)
    const {body: text, status} = await this.readResponse(stream, method, path)
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      throw new ZtError('ZT_ERR_BAD_RESPONSE', `the controller at ${this.url} answered ${method} ${path} with ${text === '' ? 'an empty body' : 'non-JSON'} (status ${status})`)
    }

    if (status >= 400) {
      throw ztErrorFromJson(parsed) ?? new ZtError('ZT_ERR_BAD_RESPONSE', `the controller at ${this.url} answered ${method} ${path} with status ${status}`)
    }

    return parsed as T
  }

  /** Open a long-lived request (the config stream); the caller owns the returned stream. */
  async openStream(path: string): Promise<ClientHttp2Stream> {
    const session = await this.connect()
    return session.request({':method': 'POST', ':path': path, 'content-type': 'application/x-ndjson'}, {endStream: false})
  }

  /** The certificates the server presented, leaf first, as PEM. */
  async peerCertificateChain(): Promise<string[]> {
    const session = await this.connect()
    const socket = session.socket as TLSSocket
    const chain: string[] = []
    const seen = new Set<string>()
    // Walk issuerCertificate links; bounded, because a self-signed root points at itself.
    for (let cert = socket.getPeerCertificate(true); cert?.raw && chain.length < 10; cert = cert.issuerCertificate) {
      const fingerprint = cert.fingerprint256
      if (seen.has(fingerprint)) break
      seen.add(fingerprint)
      chain.push(`-----BEGIN CERTIFICATE-----\n${cert.raw.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`)
    }

    return chain
  }

  close(): void {
    this.session?.close()
    this.session = undefined
    this.connecting = undefined
  }

  private connect(): Promise<ClientHttp2Session> {
    if (this.session && !this.session.closed && !this.session.destroyed) return Promise.resolve(this.session)
    this.connecting ??= new Promise<ClientHttp2Session>((resolve, reject) => {
      let session: ClientHttp2Session
      try {
        const {ca, cert, insecure, key, serverSpiffe} = this.options
        session = http2.connect(this.url, {
          ca, cert, key, rejectUnauthorized: !insecure, ...(serverSpiffe && !insecure ? {checkServerIdentity: pinServerSpiffe(serverSpiffe)} : {}),
        })
      } catch (error) {
        reject(this.unreachable(error))
        return
      }

      const timer = setTimeout(() => {
        session.destroy()
        reject(this.unreachable(Object.assign(new Error('timed out'), {code: 'ETIMEDOUT'})))
      }, this.timeoutMs)
      timer.unref()
      session.once('connect', () => {
        clearTimeout(timer)
        this.session = session
        resolve(session)
      })
      session.on('error', (error) => {
        clearTimeout(timer)
        reject(this.unreachable(error))
      })
      session.once('close', () => {
        clearTimeout(timer)
        if (this.session === session) this.session = undefined
        this.connecting = undefined
      })
    }).catch((error: unknown) => {
      this.connecting = undefined
      throw error
    })
    return this.connecting
  }

  /**
   * The status and the whole body, or a rejection: a connection that ends before the answer is complete
   * (no :status, a body shorter than its content-length, a reset) is an unreachable controller, never an
   * empty success.
   */
  private readResponse(stream: ClientHttp2Stream, method: string, path: string): Promise<{body: string; status: number}> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = []
      let size = 0
      let status = 0
      let expectedLength: number | undefined
      let settled = false
      const fail = (error: Error): void => {
        if (settled) return
        settled = true
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL)
        reject(error)
      }

      const cutOff = (what: string): void =>
        fail(this.unreachable(Object.assign(new Error(`the connection closed ${what} ${method} ${path}`), {code: 'ECONNRESET'})))
      stream.setTimeout(this.timeoutMs, () => fail(this.unreachable(Object.assign(new Error(`no answer to ${method} ${path} within ${this.timeoutMs} ms`), {code: 'ETIMEDOUT'}))))
      stream.on('response', (headers) => {
        status = Number(headers[':status'])
        const length = headers['content-length']
        if (typeof length === 'string' && /^\d+$/.test(length)) expectedLength = Number(length)
      })
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > MAX_RESPONSE_BYTES) {
          fail(new ZtError('ZT_ERR_BAD_RESPONSE', `the controller's answer to ${method} ${path} exceeds ${MAX_RESPONSE_BYTES} bytes`))
          return
        }

        chunks.push(chunk)
      })
      stream.on('end', () => {
        if (status === 0) return cutOff('before the controller answered')
        if (expectedLength !== undefined && size !== expectedLength) return cutOff(`after ${size} of ${expectedLength} bytes of the answer to`)
        settled = true
        resolve({body: Buffer.concat(chunks).toString('utf8'), status})
      })
      stream.on('error', (error) => fail(this.unreachable(error)))
      stream.on('close', () => cutOff(status === 0 ? 'before the controller answered' : 'in the middle of the answer to'))
    })
  }

  private unreachable(error: unknown): ZtError {
    const code = (error as NodeJS.ErrnoException)?.code ?? ''
    if (code === IMPOSTOR) {
      return new ZtError(IMPOSTOR, `the server at ${this.url} is not the controller: ${(error as Error).message}. Nothing was sent to it`, {
        cause: error,
        exit: ExitCode.auth,
        suggestion: 'another process of the mesh (an agent, a node) answers at that address: check the URL, the port and which process listens there',
      })
    }

    if (TLS_TRUST_ERRORS.has(code)) {
      return new ZtError('ZT_ERR_CONTROLLER_UNTRUSTED', `the controller at ${this.url} presented a certificate this identity does not trust (${code})`, {
        cause: error,
        exit: ExitCode.auth,
        suggestion: 'the controller was probably re-created with a new CA: enroll again, or check `ztctl context show`',
      })
    }

    return new ZtError('ZT_ERR_CONTROLLER_UNREACHABLE', `cannot reach the controller at ${this.url}: ${describeSystemError(error)}`, {
      cause: error,
      exit: ExitCode.unreachable,
      suggestion: 'check that `ztctl controller run` is running there, that the address and port are right, and that no firewall is in the way',
    })
  }
}

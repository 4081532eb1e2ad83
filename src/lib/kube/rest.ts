// Requests to the Kubernetes API as JSON in, JSON out: install, verify and uninstall apply, compare and diff
// whole objects in their wire form (client-node's typed models would rename or drop fields, e.g. a CRD
// schema's `default` and `enum`). Credentials and TLS come from the kubeconfig that client.ts loads
// (client-node applies them, exec plugins included); one keep-alive agent per client.
import http from 'node:http'
import https from 'node:https'

import type * as k8s from '@kubernetes/client-node'

import {ExitCode, ZtError} from '../errors.js'
import {kubeError, type KubeTarget, loadKubeConfig} from './client.js'

export interface RequestOptions {
  body?: unknown
  /** default application/json; server-side apply sends application/apply-patch+yaml */
  contentType?: string
  query?: Record<string, string | number | boolean | undefined>
  /** what the request is about, for error messages ("DaemonSet ztctl-system/ztctl-node") */
  what?: string
  /** per-request timeout (default 30 s) */
  timeoutMs?: number
  /** return the body as text (logs) instead of parsing JSON */
  text?: boolean
}

export interface KubeClient {
  readonly kubeConfig: k8s.KubeConfig
  /** the context in use and its server URL (for messages) */
  readonly context: string
  readonly server: string
  request<T = unknown>(method: string, apiPath: string, options?: RequestOptions): Promise<T>
  close(): void
}

/** A failed API call: the HTTP status the server answered with (0 when it could not be reached). */
export class KubeApiError extends ZtError {
  constructor(readonly status: number, code: string, message: string, options: ConstructorParameters<typeof ZtError>[2]) {
    super(code, message, options)
  }
}

/** True when the API server answered 404. */
export const isMissing = (error: unknown): boolean => error instanceof KubeApiError && error.status === 404

/** A client for the target's cluster; nothing is sent until the first request. */
export async function connectKube(target: KubeTarget = {}): Promise<KubeClient> {
  const kubeConfig = await loadKubeConfig(target)
  return new Client(kubeConfig, kubeConfig.getCurrentContext(), kubeConfig.getCurrentCluster()!.server)
}

class Client implements KubeClient {
  private agent?: Promise<http.Agent>

  constructor(readonly kubeConfig: k8s.KubeConfig, readonly context: string, readonly server: string) {}

  close(): void {
    void this.agent?.then((agent) => agent.destroy(), () => {})
  }

  async request<T = unknown>(method: string, apiPath: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(this.server.replace(/\/+$/, '') + apiPath)
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value))
    }

    const tls: https.RequestOptions = {}
    await this.kubeConfig.applyToHTTPSOptions(tls) // credentials and headers (exec plugins refresh tokens here)
    const agent = await (this.agent ??= this.makeAgent(tls))
    const body = options.body === undefined ? undefined : JSON.stringify(options.body)
    const headers: http.OutgoingHttpHeaders = {...(tls.headers as http.OutgoingHttpHeaders), accept: 'application/json'}
    if (body !== undefined) {
      headers['content-type'] = options.contentType ?? 'application/json'
      headers['content-length'] = Buffer.byteLength(body)
    }

    const {status, text} = await send(url, {agent, headers, method, timeout: options.timeoutMs ?? 30_000}, body).catch((error: unknown) => {
      throw this.unreachable(error)
    })
    if (status >= 200 && status < 300) {
      if (options.text) return text as T
      return (text === '' ? undefined : JSON.parse(text)) as T
    }

    const failure = kubeError({body: text, code: status}, options.what ?? `${method} ${apiPath}`)
    throw new KubeApiError(status, failure.code, failure.message, {exit: failure.exit, suggestion: failure.suggestion})
  }

  private async makeAgent(tls: https.RequestOptions): Promise<http.Agent> {
    const cluster = this.kubeConfig.getCurrentCluster()
    if (this.server.startsWith('http:')) return new http.Agent({keepAlive: true})
    return new https.Agent({
      ca: tls.ca, cert: tls.cert, keepAlive: true, key: tls.key, passphrase: tls.passphrase, pfx: tls.pfx,
      rejectUnauthorized: cluster?.skipTLSVerify ? false : tls.rejectUnauthorized,
      servername: cluster?.tlsServerName,
    })
  }

  private unreachable(error: unknown): KubeApiError {
    const failure = kubeError(error, `reach the Kubernetes API server ${this.server} (context ${this.context})`)
    return new KubeApiError(0, failure.code, failure.message, {cause: error, exit: ExitCode.unreachable, suggestion: failure.suggestion})
  }
}

function send(url: URL, options: http.RequestOptions, body: string | undefined): Promise<{status: number; text: string}> {
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'http:' ? http : https).request(url, options, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => resolve({status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8')}))
      response.on('error', reject)
    })
    request.on('timeout', () => request.destroy(Object.assign(new Error('timed out'), {code: 'ETIMEDOUT'})))
    request.on('error', reject)
    request.end(body)
  })
}


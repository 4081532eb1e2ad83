// The one place that loads a kubeconfig and talks to a Kubernetes API server. Everything Kubernetes in ztctl
// goes through connectKube(): `--kubeconfig` (else $KUBECONFIG, else ~/.kube/config, else the in-cluster
// ServiceAccount), `--kube-context`, and never client-node's silent fallback to http://localhost:8080.
// Failures become ZtErrors in words (404 → not found, 403 → an RBAC hint, connection refused → unreachable);
// a raw ApiException (its message carries the whole body and headers) never reaches the user.
//
// Two ways to call the API: `request()` sends JSON and returns the server's JSON as it is (install, verify,
// uninstall diff and apply whole objects, so they want the wire form, not client-node's typed models), and
// `api(CoreV1Api)` builds client-node's typed clients for code that prefers them (the store, informers).
import {existsSync} from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import os from 'node:os'
import path from 'node:path'

import type * as k8s from '@kubernetes/client-node'

import {closest} from '../closest.js'
import {describeSystemError, ExitCode, ZtError} from '../errors.js'

export interface KubeTarget {
  /** --kubeconfig: one path, or several joined with ':' as in $KUBECONFIG */
  kubeconfig?: string
  /** --kube-context: a context of that kubeconfig (default: its current-context) */
  context?: string
}

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
  /** where the configuration came from: a file path, or "in-cluster" */
  readonly source: string
  request<T = unknown>(method: string, apiPath: string, options?: RequestOptions): Promise<T>
  /** client-node's typed API client, e.g. api(k8s.CoreV1Api) */
  api<T extends k8s.ApiType>(ctor: new (config: k8s.Configuration) => T): T
  close(): void
}

/** A failed API call: the status the server answered with (0 when it could not be reached) and its Status reason. */
export class KubeApiError extends ZtError {
  constructor(
    readonly status: number,
    readonly reason: string | undefined,
    code: string,
    message: string,
    options: ConstructorParameters<typeof ZtError>[2],
  ) {
    super(code, message, options)
  }
}

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token'

/** Load the kubeconfig, pick the context and check that it names a cluster. Nothing is sent yet. */
export async function connectKube(target: KubeTarget = {}, env: NodeJS.ProcessEnv = process.env): Promise<KubeClient> {
  const k8s = await import('@kubernetes/client-node')
  const kubeConfig = new k8s.KubeConfig()
  const source = loadKubeConfig(kubeConfig, target.kubeconfig ?? env.KUBECONFIG, env)
  if (target.context) {
    if (!kubeConfig.getContextObject(target.context)) {
      const names = kubeConfig.getContexts().map((context) => context.name)
      const near = closest(target.context, names)
      throw new ZtError('ZT_ERR_KUBE_CONTEXT_NOT_FOUND', `kubeconfig ${source} has no context "${target.context}"`, {
        exit: ExitCode.notFound,
        suggestion: near ? `did you mean --kube-context ${near}?` : names.length > 0 ? `its contexts: ${names.join(', ')}` : 'add a context to the kubeconfig',
      })
    }

    kubeConfig.setCurrentContext(target.context)
  }

  const context = kubeConfig.getCurrentContext()
  const cluster = kubeConfig.getCurrentCluster()
  if (!context || !kubeConfig.getContextObject(context) || !cluster) {
    const names = kubeConfig.getContexts().map((entry) => entry.name)
    throw new ZtError('ZT_ERR_NO_KUBE_CONTEXT', `kubeconfig ${source} has no usable current context${context ? ` ("${context}" names no cluster)` : ''}`, {
      exit: ExitCode.notFound,
      suggestion: names.length > 0 ? `pass --kube-context (one of: ${names.join(', ')}) or run \`kubectl config use-context NAME\`` : 'point --kubeconfig at a kubeconfig with a cluster and a context',
    })
  }

  return new Client(kubeConfig, context, cluster.server, source)
}

function loadKubeConfig(kubeConfig: k8s.KubeConfig, paths: string | undefined, env: NodeJS.ProcessEnv): string {
  const files = (paths ?? '').split(path.delimiter).filter(Boolean)
  if (files.length === 0) {
    const home = path.join(env.HOME ?? os.homedir(), '.kube', 'config')
    if (existsSync(home)) files.push(home)
  }

  if (files.length === 0) {
    if (env.KUBERNETES_SERVICE_HOST && existsSync(SERVICE_ACCOUNT_TOKEN)) {
      kubeConfig.loadFromCluster()
      return 'in-cluster'
    }

    throw new ZtError('ZT_ERR_NO_KUBECONFIG', 'no kubeconfig: --kubeconfig and $KUBECONFIG are not set, ~/.kube/config does not exist and this is not a pod', {
      exit: ExitCode.notFound,
      suggestion: 'pass --kubeconfig PATH (or set KUBECONFIG) to the kubeconfig of the cluster',
    })
  }

  for (const [index, file] of files.entries()) {
    if (!existsSync(file)) {
      throw new ZtError('ZT_ERR_NO_KUBECONFIG', `kubeconfig ${file} does not exist`, {exit: ExitCode.notFound, suggestion: 'check the --kubeconfig path (or $KUBECONFIG)'})
    }

    try {
      if (index === 0) kubeConfig.loadFromFile(file)
      else {
        const more = new (kubeConfig.constructor as new () => k8s.KubeConfig)()
        more.loadFromFile(file)
        kubeConfig.mergeConfig(more, true)
      }
    } catch (error) {
      throw new ZtError('ZT_ERR_BAD_KUBECONFIG', `kubeconfig ${file} cannot be read: ${(error as Error).message}`, {
        cause: error,
        exit: ExitCode.usage,
        suggestion: 'check the file with `kubectl config view --kubeconfig FILE`',
      })
    }
  }

  return files.join(path.delimiter)
}

class Client implements KubeClient {
  private agent?: Promise<http.Agent>

  constructor(readonly kubeConfig: k8s.KubeConfig, readonly context: string, readonly server: string, readonly source: string) {}

  api<T extends k8s.ApiType>(ctor: new (config: k8s.Configuration) => T): T {
    return this.kubeConfig.makeApiClient(ctor)
  }

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

    throw kubeStatusError(status, text, options.what ?? `${method} ${apiPath}`, this.context)
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

  private unreachable(error: unknown): ZtError {
    return new KubeApiError(0, undefined, 'ZT_ERR_KUBE_UNREACHABLE', `the Kubernetes API server ${this.server} (context ${this.context}) cannot be reached: ${describeSystemError(error)}`, {
      cause: error,
      exit: ExitCode.unreachable,
      suggestion: 'is the cluster up? check with `kubectl --context ' + this.context + ' get --raw /version`',
    })
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

/** A Kubernetes Status (or any error body) as a ZtError with the server's own words and what to do. */
export function kubeStatusError(status: number, text: string, what: string, context: string): KubeApiError {
  let message = text.trim().slice(0, 500)
  let reason: string | undefined
  try {
    const parsed = JSON.parse(text) as {message?: string; reason?: string}
    if (parsed.message) message = parsed.message
    reason = parsed.reason
  } catch {
    // not JSON: keep the text
  }

  const said = message ? `: ${message}` : ''
  switch (status) {
    case 401: {
      return new KubeApiError(status, reason, 'ZT_ERR_KUBE_UNAUTHORIZED', `${what}: the API server did not accept the credentials of context ${context}${said}`, {
        exit: ExitCode.auth, suggestion: 'refresh the kubeconfig credentials (expired token or certificate?)',
      })
    }

    case 403: {
      return new KubeApiError(status, reason, 'ZT_ERR_KUBE_FORBIDDEN', `${what}: forbidden${said}`, {
        exit: ExitCode.auth, suggestion: 'this needs more RBAC rights: check with `kubectl auth can-i`, or use a cluster-admin context',
      })
    }

    case 404: {
      return new KubeApiError(status, reason, 'ZT_ERR_KUBE_NOT_FOUND', `${what}: not found${said}`, {exit: ExitCode.notFound})
    }

    case 409: {
      return new KubeApiError(status, reason, 'ZT_ERR_KUBE_CONFLICT', `${what}: conflict${said}`, {
        exit: ExitCode.conflict, suggestion: 'another client changed it at the same time: run the command again',
      })
    }

    case 422:
    case 400: {
      return new KubeApiError(status, reason, 'ZT_ERR_KUBE_INVALID', `${what}: rejected by the API server${said}`, {exit: ExitCode.failure})
    }

    default: {
      return new KubeApiError(status, reason, 'ZT_ERR_KUBE_API', `${what}: the API server answered HTTP ${status}${said}`, {exit: ExitCode.failure})
    }
  }
}

/** client-node's ApiException (typed clients) or any error → a ZtError in words. */
export function kubeError(error: unknown, what: string, context = 'current'): ZtError {
  if (ZtError.is(error)) return error
  const exception = error as {body?: unknown; code?: unknown}
  if (typeof exception?.code === 'number' && exception.code >= 100) {
    const body = typeof exception.body === 'string' ? exception.body : JSON.stringify(exception.body ?? '')
    return kubeStatusError(exception.code, body, what, context)
  }

  return new KubeApiError(0, undefined, 'ZT_ERR_KUBE_UNREACHABLE', `${what}: ${describeSystemError(error)}`, {cause: error, exit: ExitCode.unreachable})
}

/** True when the error is the API server saying 404. */
export const isNotFound = (error: unknown): boolean => error instanceof KubeApiError && error.status === 404

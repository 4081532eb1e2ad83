// The one place that loads a kubeconfig and builds Kubernetes API clients (@kubernetes/client-node,
// imported lazily: never on the `ztctl --help` path). `--kubeconfig` (a path, or a KUBECONFIG-style list),
// `--context`, else ~/.kube/config, else the in-cluster service account. Nothing found is a ZtError,
// never client-node's silent fallback to http://localhost:8080. ApiExceptions become ZtErrors in words.
import {existsSync} from 'node:fs'
import {homedir} from 'node:os'
import path from 'node:path'

import type * as k8s from '@kubernetes/client-node'

import {describeSystemError, ExitCode, ZtError} from '../errors.js'

export type KubeModule = typeof k8s

export interface KubeTarget {
  /** a kubeconfig path, or several joined with `:` as in $KUBECONFIG */
  kubeconfig?: string
  /** the kubeconfig context; default its current-context */
  context?: string
}

export interface KubeClients {
  authn: k8s.AuthenticationV1Api
  coordination: k8s.CoordinationV1Api
  core: k8s.CoreV1Api
  custom: k8s.CustomObjectsApi
  kc: k8s.KubeConfig
  k8s: KubeModule
}

const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token'

let loaded: Promise<KubeModule> | undefined
/** @kubernetes/client-node, loaded on first use. */
export function kubeModule(): Promise<KubeModule> {
  loaded ??= import('@kubernetes/client-node')
  return loaded
}

export const noKubeconfigError = (why: string): ZtError =>
  new ZtError('ZT_ERR_NO_KUBECONFIG', `no usable Kubernetes configuration: ${why}`, {
    exit: ExitCode.usage,
    suggestion: 'pass --kubeconfig FILE (or set KUBECONFIG), or run inside a pod with a service account',
  })

/** A KubeConfig for the target, checked: it names a context and that context a cluster. */
export async function loadKubeConfig(target: KubeTarget = {}, env: NodeJS.ProcessEnv = process.env): Promise<k8s.KubeConfig> {
  const {KubeConfig} = await kubeModule()
  const kc = new KubeConfig()
  const files = (target.kubeconfig ?? '').split(path.delimiter).filter((file) => file !== '')
  const defaultFile = path.join(homeOf(env), '.kube', 'config')
  try {
    if (files.length > 0) {
      for (const [index, file] of files.entries()) {
        if (!existsSync(file)) throw noKubeconfigError(`${file} does not exist`)
        if (index === 0) {
          kc.loadFromFile(file)
        } else {
          const more = new KubeConfig()
          more.loadFromFile(file)
          kc.mergeConfig(more, true)
        }
      }
    } else if (existsSync(defaultFile)) {
      kc.loadFromFile(defaultFile)
    } else if (env.KUBERNETES_SERVICE_HOST && existsSync(IN_CLUSTER_TOKEN)) {
      kc.loadFromCluster()
    } else {
      throw noKubeconfigError(`no --kubeconfig, no KUBECONFIG, no ${defaultFile}, and not inside a pod`)
    }
  } catch (error) {
    if (ZtError.is(error)) throw error
    throw new ZtError('ZT_ERR_BAD_KUBECONFIG', `cannot read the kubeconfig: ${(error as Error).message}`, {
      cause: error,
      exit: ExitCode.usage,
      suggestion: 'check the file with `kubectl config view --kubeconfig FILE`',
    })
  }

  if (target.context !== undefined) {
    if (!kc.getContextObject(target.context)) {
      const known = kc.getContexts().map((context) => context.name).join(', ') || 'none'
      throw new ZtError('ZT_ERR_KUBE_CONTEXT', `the kubeconfig has no context "${target.context}" (known: ${known})`, {
        exit: ExitCode.usage,
        suggestion: 'list them with `kubectl config get-contexts`',
      })
    }

    kc.setCurrentContext(target.context)
  }

  if (kc.getContexts().length === 0 || !kc.getCurrentContext()) throw noKubeconfigError('the kubeconfig defines no current context')
  if (!kc.getCurrentCluster()) throw noKubeconfigError(`context "${kc.getCurrentContext()}" names no cluster`)
  return kc
}

/** $HOME, else the passwd entry; a container user without one (runAsUser 65532) has neither: then '/'. */
function homeOf(env: NodeJS.ProcessEnv): string {
  if (env.HOME) return env.HOME
  try {
    return homedir()
  } catch {
    return '/'
  }
}

export async function kubeClients(target: KubeTarget = {}): Promise<KubeClients> {
  const k8sModule = await kubeModule()
  const kc = await loadKubeConfig(target)
  return {
    authn: kc.makeApiClient(k8sModule.AuthenticationV1Api),
    coordination: kc.makeApiClient(k8sModule.CoordinationV1Api),
    core: kc.makeApiClient(k8sModule.CoreV1Api),
    custom: kc.makeApiClient(k8sModule.CustomObjectsApi),
    k8s: k8sModule,
    kc,
  }
}

/** The HTTP status of an ApiException (or of a watch failure), else undefined. */
export function kubeStatus(error: unknown): number | undefined {
  const code = (error as {code?: unknown; statusCode?: unknown})?.code ?? (error as {statusCode?: unknown})?.statusCode
  return typeof code === 'number' ? code : undefined
}

/** The `message` of the Status object in an ApiException's body, without the headers and body dump. */
export function kubeMessage(error: unknown): string {
  let body = (error as {body?: unknown})?.body
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body)
    } catch {
      // not JSON: keep the text
    }
  }

  if (typeof body === 'object' && body !== null && typeof (body as {message?: unknown}).message === 'string') return (body as {message: string}).message
  if (typeof body === 'string' && body.trim() !== '') return body.trim().slice(0, 500)
  const message = (error as Error)?.message ?? String(error)
  // ApiException.message is "HTTP-Code: …\nMessage: …\nBody: …\nHeaders: …": keep the first two lines only.
  return message.split('\nBody:')[0].replaceAll('\n', ' ').slice(0, 500)
}

export const isNotFound = (error: unknown): boolean => kubeStatus(error) === 404
export const isConflict = (error: unknown): boolean => kubeStatus(error) === 409
export const isGone = (error: unknown): boolean => kubeStatus(error) === 410

/** An API failure as a user error: `what` says what was being done ("read Secret ztctl-admin in ztctl-system"). */
export function kubeError(error: unknown, what: string): ZtError {
  if (ZtError.is(error)) return error
  const status = kubeStatus(error)
  const message = kubeMessage(error)
  switch (status) {
    case 401: {
      return new ZtError('ZT_ERR_KUBE_UNAUTHORIZED', `cannot ${what}: the API server did not accept our credentials (${message})`, {
        cause: error, exit: ExitCode.auth, suggestion: 'refresh the kubeconfig credentials (`kubectl get ns` should work)',
      })
    }

    case 403: {
      return new ZtError('ZT_ERR_KUBE_FORBIDDEN', `cannot ${what}: forbidden by RBAC (${message})`, {
        cause: error, exit: ExitCode.auth, suggestion: 'check the permissions with `kubectl auth can-i`; the ztctl Role and ClusterRole grant what the controller needs',
      })
    }

    case 404: {
      return new ZtError('ZT_ERR_NOT_FOUND', `cannot ${what}: not found (${message})`, {cause: error, exit: ExitCode.notFound})
    }

    case 409: {
      return new ZtError('ZT_ERR_CONFLICT', `cannot ${what}: conflict (${message})`, {cause: error, exit: ExitCode.conflict, suggestion: 'retry: another writer changed it meanwhile'})
    }

    case undefined: {
      return new ZtError('ZT_ERR_KUBE_UNREACHABLE', `cannot ${what}: the API server is unreachable (${describeSystemError((error as {cause?: unknown})?.cause ?? error)})`, {
        cause: error, exit: ExitCode.unreachable, suggestion: 'check that the cluster is up and the kubeconfig points at it (`kubectl get ns`)',
      })
    }

    default: {
      return new ZtError('ZT_ERR_KUBE_API', `cannot ${what}: the API server answered ${status} (${message})`, {cause: error})
    }
  }
}

// The one place that loads a kubeconfig: `--kubeconfig` (else $KUBECONFIG, else ~/.kube/config, else the
// in-cluster ServiceAccount) and `--kube-context`, checked before anything is sent, and never client-node's
// silent fallback to http://localhost:8080. API failures become ZtErrors in words (kubeError).
import {existsSync} from 'node:fs'
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

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token'

/** A KubeConfig for the target, checked: it names a context and that context a cluster. Nothing is sent yet. */
export async function loadKubeConfig(target: KubeTarget = {}, env: NodeJS.ProcessEnv = process.env): Promise<k8s.KubeConfig> {
  const {KubeConfig} = await import('@kubernetes/client-node')
  const kubeConfig = new KubeConfig()
  const source = readKubeConfig(kubeConfig, target.kubeconfig ?? env.KUBECONFIG, env)
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

  return kubeConfig
}

function readKubeConfig(kubeConfig: k8s.KubeConfig, paths: string | undefined, env: NodeJS.ProcessEnv): string {
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
      exit: ExitCode.usage,
      suggestion: 'pass --kubeconfig PATH (or set KUBECONFIG) to the kubeconfig of the cluster',
    })
  }

  for (const [index, file] of files.entries()) {
    if (!existsSync(file)) {
      throw new ZtError('ZT_ERR_NO_KUBECONFIG', `kubeconfig ${file} does not exist`, {exit: ExitCode.usage, suggestion: 'check the --kubeconfig path (or $KUBECONFIG)'})
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

/** An API failure (client-node's ApiException, or a Status the server answered with) as a user error in words. */
export function kubeError(error: unknown, what: string, context = 'current'): ZtError {
  if (ZtError.is(error)) return error
  const exception = error as {body?: unknown; code?: unknown}
  if (typeof exception?.code === 'number' && exception.code >= 100) {
    const body = typeof exception.body === 'string' ? exception.body : JSON.stringify(exception.body ?? '')
    return statusError(exception.code, body, what, context)
  }

  return new ZtError('ZT_ERR_KUBE_UNREACHABLE', `${what}: the API server cannot be reached: ${describeSystemError(error)}`, {
    cause: error, exit: ExitCode.unreachable, suggestion: 'is the cluster up? `kubectl get --raw /version` should answer',
  })
}

/** True when the API server said 404 (client-node's ApiException). */
export const isNotFound = (error: unknown): boolean => (error as {code?: unknown})?.code === 404

/** An HTTP error status and its body (a Kubernetes Status, or any text) as a ZtError with the server's own words and what to do. */
export function statusError(status: number, text: string, what: string, context: string): ZtError {
  let message = text.trim().slice(0, 500)
  try {
    const parsed = JSON.parse(text) as {message?: string}
    if (parsed.message) message = parsed.message
  } catch {
    // not JSON: keep the text
  }

  const said = message ? `: ${message}` : ''
  switch (status) {
    case 401: {
      return new ZtError('ZT_ERR_KUBE_UNAUTHORIZED', `${what}: the API server did not accept the credentials of context ${context}${said}`, {
        exit: ExitCode.auth, suggestion: 'refresh the kubeconfig credentials (expired token or certificate?)',
      })
    }

    case 403: {
      return new ZtError('ZT_ERR_KUBE_FORBIDDEN', `${what}: forbidden${said}`, {
        exit: ExitCode.auth, suggestion: 'this needs more RBAC rights: check with `kubectl auth can-i`, or use a cluster-admin context',
      })
    }

    case 404: {
      return new ZtError('ZT_ERR_KUBE_NOT_FOUND', `${what}: not found${said}`, {exit: ExitCode.notFound})
    }

    case 409: {
      return new ZtError('ZT_ERR_KUBE_CONFLICT', `${what}: conflict${said}`, {
        exit: ExitCode.conflict, suggestion: 'another client changed it at the same time: run the command again',
      })
    }

    case 422:
    case 400: {
      return new ZtError('ZT_ERR_KUBE_INVALID', `${what}: rejected by the API server${said}`, {exit: ExitCode.failure})
    }

    default: {
      return new ZtError('ZT_ERR_KUBE_API', `${what}: the API server answered HTTP ${status}${said}`, {exit: ExitCode.failure})
    }
  }
}


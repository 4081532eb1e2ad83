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
      throw new ZtError('ZT_ERR_KUBE_CONTEXT', `kubeconfig ${source} has no context "${target.context}" (known: ${names.join(', ') || 'none'})`, {
        exit: ExitCode.usage,
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

/** An API failure (client-node's ApiException, or {code, body} of a response) as a user error: `what` is what was being done ("apply DaemonSet ztctl-system/ztctl-node"). */
export function kubeError(error: unknown, what: string): ZtError {
  if (ZtError.is(error)) return error
  const status = (error as {code?: unknown})?.code
  if (typeof status !== 'number') {
    return new ZtError('ZT_ERR_KUBE_UNREACHABLE', `cannot ${what}: the API server is unreachable (${describeSystemError((error as {cause?: unknown})?.cause ?? error)})`, {
      cause: error, exit: ExitCode.unreachable, suggestion: 'check that the cluster is up and the kubeconfig points at it (`kubectl get ns`)',
    })
  }

  const message = statusMessage((error as {body?: unknown}).body)
  const said = message ? ` (${message})` : ''
  switch (status) {
    case 401: {
      return new ZtError('ZT_ERR_KUBE_UNAUTHORIZED', `cannot ${what}: the API server did not accept our credentials${said}`, {
        cause: error, exit: ExitCode.auth, suggestion: 'refresh the kubeconfig credentials (`kubectl get ns` should work)',
      })
    }

    case 403: {
      return new ZtError('ZT_ERR_KUBE_FORBIDDEN', `cannot ${what}: forbidden by RBAC${said}`, {
        cause: error, exit: ExitCode.auth, suggestion: 'check the permissions with `kubectl auth can-i`, or use a cluster-admin context',
      })
    }

    case 404: {
      return new ZtError('ZT_ERR_NOT_FOUND', `cannot ${what}: not found${said}`, {cause: error, exit: ExitCode.notFound})
    }

    case 409: {
      return new ZtError('ZT_ERR_CONFLICT', `cannot ${what}: conflict${said}`, {cause: error, exit: ExitCode.conflict, suggestion: 'retry: another writer changed it meanwhile'})
    }

    default: {
      return new ZtError('ZT_ERR_KUBE_API', `cannot ${what}: the API server answered ${status}${said}`, {cause: error})
    }
  }
}

/** True when the API server said 404 (client-node's ApiException). */
export const isNotFound = (error: unknown): boolean => (error as {code?: unknown})?.code === 404

/** The `message` of a Status body, not the whole body. */
function statusMessage(body: unknown): string {
  let parsed = body
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body)
    } catch {
      return body.trim().slice(0, 500)
    }
  }

  const message = (parsed as {message?: unknown} | undefined)?.message
  return typeof message === 'string' ? message : ''
}

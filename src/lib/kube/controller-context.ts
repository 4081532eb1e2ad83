// The CLI against a controller that runs in a cluster: a context of kind `kubernetes` names a kubeconfig,
// a kube context and the install namespace instead of a URL and an identity file. Each command then
// port-forwards (port-forward.ts: client-node PortForward, one WebSocket per connection) from 127.0.0.1:0 to a Ready pod
// behind Service ztctl-controller and authenticates with the admin identity in Secret ztctl-admin
// (whoever may read that Secret is a mesh admin, as with the kubeconfig itself). `install` writes the
// context at its end, so `ztctl tunnel list` works against the cluster right after `ztctl install`.
import path from 'node:path'

import type {V1Pod} from '@kubernetes/client-node'

import {ControllerClient} from '../client/controller-client.js'
import {ExitCode, ZtError} from '../errors.js'
import {type Context, deleteContext, loadContexts, upsertContext} from '../home/contexts.js'
import type {Home} from '../home/home.js'
import {type IdentityFile, parseIdentityFile} from '../identity/file.js'
import {isNotFound, type KubeClients, kubeClients, kubeError, loadKubeConfig} from './client.js'
import {forwardPodPort} from './port-forward.js'
import {ADMIN_IDENTITY_KEY, CONTROLLER_PORT, CONTROLLER_SERVICE, DEFAULT_NAMESPACE, RUNTIME_OBJECTS} from './objects.js'

export interface KubeContextInput {
  /** the context's name; default `k8s-<kube context>` */
  name?: string
  kubeconfig?: string
  /** the kube context; default the kubeconfig's current one (recorded, so a later `kubectl config use-context` does not move ztctl) */
  kubeContext?: string
  namespace?: string
  /** make it the current context (default true) */
  makeCurrent?: boolean
}

/** The part of a context of kind `kubernetes` that says where the controller is. */
export interface KubeContextTarget {
  kubeconfig?: string
  context: string
  namespace: string
}

const CONTEXT_NAME_CHARS = /[^\w.@-]+/g

/**
 * Delete the contexts of kind `kubernetes` that point at this kube context and namespace (uninstall: the
 * controller they reach is gone; the next install writes them again). Returns their names.
 */
export async function forgetKubeContexts(home: Home, target: {kubeContext: string; namespace: string}): Promise<string[]> {
  const {contexts} = await loadContexts(home)
  const stale = contexts.filter((context) => context.kind === 'kubernetes' && context.kubernetes?.context === target.kubeContext && context.kubernetes.namespace === target.namespace)
  for (const context of stale) await deleteContext(home, context.name)
  return stale.map((context) => context.name)
}

/** Add (or replace) a context of kind `kubernetes` and return it. */
export async function upsertKubeContext(home: Home, input: KubeContextInput): Promise<Context> {
  const kubeconfig = input.kubeconfig
    ?.split(path.delimiter)
    .filter((file) => file !== '')
    .map((file) => path.resolve(file))
    .join(path.delimiter) || undefined
  const kc = await loadKubeConfig({context: input.kubeContext, kubeconfig})
  const kubeContext = kc.getCurrentContext()
  const namespace = input.namespace ?? DEFAULT_NAMESPACE
  const name = input.name ?? `k8s-${kubeContext.replaceAll(CONTEXT_NAME_CHARS, '-')}`.slice(0, 63)
  const context: Context = {
    controller: describeTarget({context: kubeContext, namespace}),
    identity: `secret/${RUNTIME_OBJECTS.adminSecret}`,
    kind: 'kubernetes',
    kubernetes: {context: kubeContext, ...(kubeconfig ? {kubeconfig} : {}), namespace},
    name,
  }
  await upsertContext(home, context, input.makeCurrent ?? true)
  return context
}

/** How a kubernetes context shows where its controller is (CONTROLLER columns, messages). */
export const describeTarget = (target: Pick<KubeContextTarget, 'context' | 'namespace'>): string =>
  `kubernetes://${target.context}/${target.namespace}/${CONTROLLER_SERVICE}`

export interface KubeControllerConnection {
  client: ControllerClient
  identity: IdentityFile
  /** the pod the connection goes to */
  pod: string
  close(): void
}

/** Read the admin identity and open a port-forward to a Ready controller pod; the client speaks through it. */
export async function connectToClusterController(target: KubeContextTarget, timeoutMs?: number): Promise<KubeControllerConnection> {
  const clients = await kubeClients({context: target.context, kubeconfig: target.kubeconfig})
  const [identity, endpoint] = await Promise.all([readAdminIdentity(clients, target.namespace), readyControllerPod(clients, target.namespace)])
  const forwarded = await forwardPodPort(clients, target.namespace, endpoint.pod, endpoint.port)
  const {port} = forwarded
  const client = ControllerClient.fromIdentity({...identity, controller: `https://127.0.0.1:${port}`}, timeoutMs)
  // Bound now: a session may make client.close() close the whole connection.
  const closeClient = client.close.bind(client)
  return {
    client,
    close() {
      closeClient()
      forwarded.close()
    },
    identity,
    pod: endpoint.pod,
  }
}

/** The admin identity of an in-cluster controller (for `context show`: no port-forward needed). */
export async function readClusterAdminIdentity(target: KubeContextTarget): Promise<IdentityFile> {
  return readAdminIdentity(await kubeClients({context: target.context, kubeconfig: target.kubeconfig}), target.namespace)
}

async function readAdminIdentity(clients: KubeClients, namespace: string): Promise<IdentityFile> {
  const name = RUNTIME_OBJECTS.adminSecret
  let text: string | undefined
  try {
    const secret = await clients.core.readNamespacedSecret({name, namespace})
    const data = secret.data?.[ADMIN_IDENTITY_KEY]
    text = data === undefined ? undefined : Buffer.from(data, 'base64').toString('utf8')
  } catch (error) {
    if (!isNotFound(error)) throw kubeError(error, `read Secret ${name} in ${namespace} (the admin identity)`)
  }

  if (text === undefined) {
    throw new ZtError('ZT_ERR_NOT_FOUND', `there is no admin identity in Secret ${namespace}/${name}`, {
      exit: ExitCode.notFound,
      suggestion: `is ztctl installed in namespace ${namespace} and its controller running? (\`kubectl -n ${namespace} get pods\`); the controller's leader writes the Secret`,
    })
  }

  return parseIdentityFile(text, `Secret ${namespace}/${name}`)
}

/** A Ready pod behind Service ztctl-controller, and the pod port of its https-control port. */
async function readyControllerPod(clients: KubeClients, namespace: string): Promise<{pod: string; port: number}> {
  let selector: Record<string, string> | undefined
  let targetPort: number | string = CONTROLLER_PORT
  try {
    const service = await clients.core.readNamespacedService({name: CONTROLLER_SERVICE, namespace})
    selector = service.spec?.selector
    const port = service.spec?.ports?.find((item) => item.name === 'https-control') ?? service.spec?.ports?.[0]
    targetPort = (port?.targetPort as number | string | undefined) ?? port?.port ?? CONTROLLER_PORT
  } catch (error) {
    if (!isNotFound(error)) throw kubeError(error, `read Service ${CONTROLLER_SERVICE} in ${namespace}`)
  }

  if (!selector || Object.keys(selector).length === 0) {
    throw new ZtError('ZT_ERR_CONTROLLER_UNREACHABLE', `there is no Service ${namespace}/${CONTROLLER_SERVICE} (with a selector) to find the controller by`, {
      exit: ExitCode.unreachable, suggestion: `install ztctl in namespace ${namespace} (\`ztctl install\`), or pass the namespace it is in`,
    })
  }

  const labelSelector = Object.entries(selector).map(([key, value]) => `${key}=${value}`).join(',')
  let pods: V1Pod[]
  try {
    pods = (await clients.core.listNamespacedPod({labelSelector, namespace})).items
  } catch (error) {
    throw kubeError(error, `list the controller pods in ${namespace}`)
  }

  const ready = pods
    .filter((pod) => !pod.metadata?.deletionTimestamp && pod.status?.conditions?.some((condition) => condition.type === 'Ready' && condition.status === 'True'))
    .sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1))
  if (ready.length === 0) {
    throw new ZtError('ZT_ERR_CONTROLLER_UNREACHABLE', `no Ready controller pod in ${namespace} (${pods.length} pod(s) behind Service ${CONTROLLER_SERVICE})`, {
      exit: ExitCode.unreachable, suggestion: `look at them: \`kubectl -n ${namespace} get pods -l ${labelSelector}\` and \`kubectl -n ${namespace} describe pod …\``,
    })
  }

  // Spread CLI sessions over the replicas: any Ready one serves.
  const pod = ready[Math.floor(Math.random() * ready.length)]
  return {pod: pod.metadata!.name!, port: resolvePort(pod, targetPort)}
}

function resolvePort(pod: V1Pod, targetPort: number | string): number {
  if (typeof targetPort === 'number') return targetPort
  if (/^\d+$/.test(targetPort)) return Number(targetPort)
  for (const container of pod.spec?.containers ?? []) {
    const port = container.ports?.find((item) => item.name === targetPort)
    if (port) return port.containerPort
  }

  return CONTROLLER_PORT
}

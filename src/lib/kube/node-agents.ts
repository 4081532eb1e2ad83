// The node agents of a cluster, as the CLI reaches them (issue 12 §3): `proxy-config … POD[.NAMESPACE]`
// finds the node the pod runs on and the ztctl-node pod there, and port-forwards to its admin port
// (127.0.0.1:15000 inside that pod, never exposed), as istioctl does for ztunnel; `proxy-status` lists
// those pods beside the controller's view of each agent's sync state.
import type {V1Pod} from '@kubernetes/client-node'

import {ExitCode, ZtError} from '../errors.js'
import {loadContexts} from '../home/contexts.js'
import type {Home} from '../home/home.js'
import {type KubeClients, kubeClients, kubeError, type KubeTarget} from './client.js'
import type {ControllerApi} from '../mesh/api.js'
import type {AgentSyncStatus} from '../mesh/status.js'
import {forwardPodPort} from './port-forward.js'
import {DEFAULT_NAMESPACE, NODE_AGENT_SERVICE_ACCOUNT} from './objects.js'
import {nodeAgentName} from './workloads.js'

export const NODE_AGENT_ADMIN_PORT = 15_000
const NODE_AGENT_SELECTOR = `app.kubernetes.io/name=${NODE_AGENT_SERVICE_ACCOUNT}`

export interface NodeAgentPod {
  /** the agent's mesh identity (node-<node>) */
  agent: string
  name: string
  node: string
  ready: boolean
  ip?: string
  phase?: string
  restarts: number
}

export interface ClusterAgentTarget extends KubeTarget {
  /** the install namespace (where the node agents run) */
  installNamespace: string
}

/** What `proxy-config` was asked about: a pod (`NAME[.NAMESPACE]`, namespace also from -n) or a node. */
export interface AgentSelector {
  pod?: string
  podNamespace?: string
  node?: string
}

const isReady = (pod: V1Pod): boolean => pod.status?.conditions?.some((condition) => condition.type === 'Ready' && condition.status === 'True') ?? false

export async function listNodeAgents(clients: Pick<KubeClients, 'core'>, installNamespace: string): Promise<NodeAgentPod[]> {
  let pods: V1Pod[]
  try {
    pods = (await clients.core.listNamespacedPod({labelSelector: NODE_AGENT_SELECTOR, namespace: installNamespace})).items
  } catch (error) {
    throw kubeError(error, `list the node agents (pods ${NODE_AGENT_SELECTOR}) in ${installNamespace}`)
  }

  return pods
    .filter((pod) => pod.spec?.nodeName && !pod.metadata?.deletionTimestamp)
    .map((pod) => ({
      agent: nodeAgentName(pod.spec!.nodeName!), ip: pod.status?.podIP, name: pod.metadata!.name!, node: pod.spec!.nodeName!, phase: pod.status?.phase, ready: isReady(pod),
      restarts: (pod.status?.containerStatuses ?? []).reduce((sum, status) => sum + status.restartCount, 0),
    }))
    .sort((a, b) => a.node.localeCompare(b.node) || a.name.localeCompare(b.name))
}

/** `web-1.shop` → {pod: web-1, namespace: shop}; a name without a dot takes -n (else `default`). */
export function parsePodRef(text: string, namespace?: string): {name: string; namespace: string} {
  const dot = text.indexOf('.')
  const name = dot === -1 ? text : text.slice(0, dot)
  const ns = dot === -1 ? namespace ?? 'default' : text.slice(dot + 1)
  const k8sName = /^[a-z0-9]([a-z0-9-]{0,251}[a-z0-9])?$/
  if (!k8sName.test(name) || !k8sName.test(ns)) {
    throw new ZtError('ZT_ERR_USAGE', `"${text}" is not POD[.NAMESPACE]`, {exit: ExitCode.usage, suggestion: 'e.g. `ztctl proxy-config workloads web-5d8f.shop` or `… web-5d8f -n shop`'})
  }

  return {name, namespace: ns}
}

/** The node agent pod serving SELECTOR: the one on the pod's node, on --node, or the only one. */
export async function findNodeAgent(clients: Pick<KubeClients, 'core'>, target: ClusterAgentTarget, selector: AgentSelector): Promise<NodeAgentPod> {
  let node = selector.node
  if (selector.pod) {
    const ref = parsePodRef(selector.pod, selector.podNamespace)
    let pod: V1Pod
    try {
      pod = await clients.core.readNamespacedPod(ref)
    } catch (error) {
      throw kubeError(error, `read pod ${ref.name} in ${ref.namespace}`)
    }

    const podNode = pod.spec?.nodeName
    if (!podNode) throw new ZtError('ZT_ERR_NOT_FOUND', `pod ${ref.namespace}/${ref.name} is not scheduled on a node yet`, {exit: ExitCode.notFound, suggestion: `\`kubectl -n ${ref.namespace} describe pod ${ref.name}\``})
    if (node && node !== podNode) throw new ZtError('ZT_ERR_USAGE', `pod ${ref.namespace}/${ref.name} runs on node ${podNode}, not ${node}`, {exit: ExitCode.usage, suggestion: 'drop --node, or name a pod of that node'})
    node = podNode
  }

  const agents = await listNodeAgents(clients, target.installNamespace)
  const candidates = node ? agents.filter((agent) => agent.node === node) : agents
  const found = candidates.find((agent) => agent.ready) ?? candidates.find((agent) => agent.phase === 'Running')
  if (found && (node || candidates.length === 1)) return found
  const known = agents.map((agent) => `${agent.node} (${agent.name}${agent.ready ? '' : ', not ready'})`).join(', ') || 'none'
  if (!node && candidates.length > 1) {
    throw new ZtError('ZT_ERR_USAGE', `${agents.length} node agents run in ${target.installNamespace}: say which with POD[.NAMESPACE] or --node NODE`, {exit: ExitCode.usage, suggestion: `nodes: ${known}`})
  }

  throw new ZtError('ZT_ERR_AGENT_NOT_FOUND', `no running node agent${node ? ` on node ${node}` : ''} in ${target.installNamespace}`, {
    exit: ExitCode.notFound,
    suggestion: `node agents: ${known}; look at \`kubectl -n ${target.installNamespace} get pods -l ${NODE_AGENT_SELECTOR} -o wide\``,
  })
}

/** Run FN with the admin address (127.0.0.1:PORT) of the node agent SELECTOR picks, through a port-forward. */
export async function withNodeAgentAdmin<R>(target: ClusterAgentTarget, selector: AgentSelector, fn: (admin: string, agent: NodeAgentPod) => Promise<R>): Promise<R> {
  const clients = await kubeClients(target)
  const agent = await findNodeAgent(clients, target, selector)
  const forwarded = await forwardPodPort(clients, target.installNamespace, agent.name, NODE_AGENT_ADMIN_PORT)
  try {
    return await fn(`127.0.0.1:${forwarded.port}`, agent)
  } finally {
    forwarded.close()
  }
}

/** The current ztctl context's cluster, when it is of kind kubernetes (no context at all: undefined). */
export async function currentKubeContext(home: Home): Promise<ClusterChoice['context']> {
  const file = await loadContexts(home)
  const context = file.contexts.find((item) => item.name === file.current)
  return context?.kind === 'kubernetes' ? context.kubernetes : undefined
}

export interface ClusterChoice {
  /** --kubeconfig given on the command line (not only $KUBECONFIG) */
  kubeconfigFlag?: string
  kubeContext?: string
  /** -n given: the pod's namespace (proxy-config) */
  namespace?: string
  node?: string
  /** the current ztctl context, when it is of kind kubernetes */
  context?: {context: string; kubeconfig?: string; namespace: string}
  /** $KUBECONFIG, used when the cluster was chosen by another flag */
  kubeconfigEnv?: string
}

/**
 * Whether a command reaches its agents in a cluster: when a Kubernetes flag (--kubeconfig, --kube-context,
 * -n, --node) was given, or the current ztctl context is of kind kubernetes. Otherwise undefined: the
 * command keeps its local behaviour (an agent on this host), whatever $KUBECONFIG says.
 */
export function chooseCluster(choice: ClusterChoice): ClusterAgentTarget | undefined {
  const explicit = choice.kubeconfigFlag ?? choice.kubeContext ?? choice.namespace ?? choice.node
  if (explicit === undefined) {
    return choice.context && {context: choice.context.context, installNamespace: choice.context.namespace, kubeconfig: choice.context.kubeconfig}
  }

  return {
    context: choice.kubeContext ?? (choice.kubeconfigFlag ? undefined : choice.context?.context),
    installNamespace: choice.context?.namespace ?? DEFAULT_NAMESPACE,
    kubeconfig: choice.kubeconfigFlag ?? choice.context?.kubeconfig ?? choice.kubeconfigEnv,
  }
}

/** A node agent pod beside the controller's view of that agent (proxy-status in a cluster). */
export interface ClusterAgentStatus extends NodeAgentPod {
  sync?: AgentSyncStatus
}

/** Every ztctl-node pod of the install with its sync state, plus agents the controller knows elsewhere (hosts, sidecars). */
export async function clusterProxyStatus(target: ClusterAgentTarget): Promise<{agents: ClusterAgentStatus[]; others: AgentSyncStatus[]; version: number}> {
  const clients = await kubeClients(target)
  const [{connectToClusterController}, {proxyStatus}] = await Promise.all([import('./controller-context.js'), import('../mesh/status.js')])
  const connection = await connectToClusterController({context: target.context ?? clients.kc.getCurrentContext(), kubeconfig: target.kubeconfig, namespace: target.installNamespace})
  try {
    const [pods, status] = await Promise.all([listNodeAgents(clients, target.installNamespace), proxyStatus({request: (method, path, body) => connection.client.request(method, path, body)} as ControllerApi)])
    const byName = new Map(status.agents.map((agent) => [agent.name, agent]))
    const agents = pods.map((pod) => ({...pod, sync: byName.get(pod.agent)}))
    const inCluster = new Set(pods.map((pod) => pod.agent))
    return {agents, others: status.agents.filter((agent) => !inCluster.has(agent.name)), version: status.version}
  } finally {
    connection.close()
  }
}

/** chooseCluster from a command's Kubernetes flags (and whether --kubeconfig was on its command line) and the current context. */
export async function clusterFromFlags(home: Home, argv: readonly string[], flags: {'kube-context'?: string; kubeconfig?: string; namespace?: string; node?: string}): Promise<ClusterAgentTarget | undefined> {
  const onCommandLine = argv.some((arg) => arg === '--kubeconfig' || arg.startsWith('--kubeconfig='))
  return chooseCluster({
    context: await currentKubeContext(home), kubeContext: flags['kube-context'], kubeconfigEnv: flags.kubeconfig,
    kubeconfigFlag: onCommandLine ? flags.kubeconfig : undefined, namespace: flags.namespace, node: flags.node,
  })
}

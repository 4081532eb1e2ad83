// verify-install's hub check (`hub.enabled`): every node agent, and the host pod when installed, is
// attached to the hub, as the hub itself reports it on /hub_status (its admin port listens on 127.0.0.1
// in its pod: reached through a port-forward, as `proxy-config` reaches a node agent's). An agent that is
// not attached says why in its own /config_dump (the attachment's state and last error).
import type {HubAttachment} from '../../config/types.js'
import {HOST_POD_NAME} from '../manifest/host-pod.js'
import {HUB_NAME} from '../manifest/hub.js'
import type {KubeObject} from '../manifest/objects.js'
import {HOST_IDENTITY, HUB_IDENTITY, NODE_AGENT_SERVICE_ACCOUNT} from '../objects.js'
import type {KubeClient} from '../rest.js'
import {nodeAgentName} from '../workloads.js'

const HUB_ADMIN_PORT = 15_010
const AGENT_ADMIN_PORT = 15_000
/** At most this many agents that are not attached are asked why (each is a port-forward). */
const MAX_ASKED = 3

export interface HubAttachmentReport {
  /** the expected agents the hub has attached */
  attached: string[]
  /** the node agents (node-<node>) and `host` */
  expected: string[]
  missing: {agent: string; reason: string}[]
}

interface ExpectedAgent {
  agent: string
  /** its running pod, when there is one */
  pod?: string
  /** why it cannot be asked (no running pod) */
  problem?: string
}

export interface HubCheck {
  hints: string[]
  hub: HubAttachmentReport
  message: string
  ok: boolean
}

/** Whether the expected agents are attached to the hub; with HOSTPOD the host pod is expected too. */
export async function checkHubAttachments(kube: KubeClient, namespace: string, options: {hostPod: boolean}): Promise<HubCheck> {
  const agents = await expectedAgents(kube, namespace, options.hostPod)
  const hubPod = (await runningPods(kube, namespace, HUB_NAME))[0]
  const view = hubPod ? await hubView(kube, namespace, hubPod) : {problem: 'the hub has no running pod (its Deployment scaled to 0, deleted, or not scheduled)'}
  const attachedNames = new Set(view.attached ?? [])
  const notAttached = agents.filter((agent) => !attachedNames.has(agent.agent))
  const asked = await Promise.all(notAttached.slice(0, MAX_ASKED).map(async (agent) => ({agent: agent.agent, reason: await attachmentReason(kube, namespace, agent)})))
  const hub: HubAttachmentReport = {
    attached: agents.filter((agent) => attachedNames.has(agent.agent)).map((agent) => agent.agent),
    expected: agents.map((agent) => agent.agent),
    missing: [...asked, ...notAttached.slice(MAX_ASKED).map((agent) => ({agent: agent.agent, reason: 'not asked'}))],
  }
  const counted = `${hub.attached.length} of ${agents.length} agent${agents.length === 1 ? '' : 's'} attached`
  if (agents.length > 0 && notAttached.length === 0 && !view.problem) return {hints: [], hub, message: `${counted} (${hub.attached.join(', ')})`, ok: true}
  const why = agents.length === 0 ? 'no node agent (or host pod) runs to attach' : view.problem
  const missing = hub.missing.map((each) => `${each.agent} (${each.reason})`).join(', ')
  return {hints: hubHints(namespace, hubPod), hub, message: [counted, why, missing && `not attached: ${missing}`].filter(Boolean).join('; '), ok: false}
}

function hubHints(namespace: string, hubPod: string | undefined): string[] {
  const ns = `kubectl -n ${namespace}`
  return [
    ...(hubPod
      ? [`${ns} port-forward pod/${hubPod} ${HUB_ADMIN_PORT} & ztctl hub status --admin 127.0.0.1:${HUB_ADMIN_PORT}   # the hub's own view`, `${ns} logs ${hubPod}`]
      : [`${ns} get deployment ${HUB_NAME}`, `${ns} describe pods -l app.kubernetes.io/name=${HUB_NAME}`]),
    'ztctl proxy-status   # each agent\'s hub attachments as it reports them',
    'ztctl proxy-config hubs --node NODE   # one node agent\'s attachment: state, last error',
  ]
}

/** The node agents of the nodes they run on, and the host pod's agent. */
async function expectedAgents(kube: KubeClient, namespace: string, hostPod: boolean): Promise<ExpectedAgent[]> {
  const nodePods = await listPods(kube, namespace, NODE_AGENT_SERVICE_ACCOUNT)
  const agents = nodePods
    .filter((pod) => (pod.spec as {nodeName?: string}).nodeName && !pod.metadata.deletionTimestamp)
    .map((pod) => ({agent: nodeAgentName((pod.spec as {nodeName: string}).nodeName), ...podState(pod)}))
    .sort((a, b) => a.agent.localeCompare(b.agent))
  if (!hostPod) return agents
  const host = (await listPods(kube, namespace, HOST_POD_NAME)).find((pod) => !pod.metadata.deletionTimestamp)
  return [...agents, {agent: HOST_IDENTITY, ...(host ? podState(host) : {problem: 'the host pod does not run'})}]
}

function podState(pod: KubeObject): Pick<ExpectedAgent, 'pod' | 'problem'> {
  const phase = (pod.status as {phase?: string} | undefined)?.phase
  return phase === 'Running' ? {pod: pod.metadata.name} : {problem: `its pod ${pod.metadata.name} is ${phase ?? 'not started'}`}
}

async function listPods(kube: KubeClient, namespace: string, name: string): Promise<KubeObject[]> {
  const list = await kube.request<{items: KubeObject[]}>('GET', `/api/v1/namespaces/${namespace}/pods`, {query: {labelSelector: `app.kubernetes.io/name=${name}`}, what: `list the ${name} pods`})
  return list.items
}

async function runningPods(kube: KubeClient, namespace: string, name: string): Promise<string[]> {
  return (await listPods(kube, namespace, name)).filter((pod) => !pod.metadata.deletionTimestamp && podState(pod).pod).map((pod) => pod.metadata.name)
}

/** The agents the hub has attached (their identity names), or why it could not say. */
async function hubView(kube: KubeClient, namespace: string, pod: string): Promise<{attached?: string[]; problem?: string}> {
  try {
    const status = JSON.parse(await podAdminGet(kube, namespace, pod, HUB_ADMIN_PORT, '/hub_status')) as {agents?: {name?: unknown}[]}
    if (!Array.isArray(status.agents)) return {problem: `pod ${pod} did not answer /hub_status like a hub`}
    return {attached: status.agents.flatMap((agent) => (typeof agent?.name === 'string' ? [agent.name] : []))}
  } catch (error) {
    return {problem: `the hub (pod ${pod}) does not answer /hub_status: ${(error as Error).message}`}
  }
}

/** Why AGENT is not attached, in its own words (its hub attachment's state and last error). */
async function attachmentReason(kube: KubeClient, namespace: string, agent: ExpectedAgent): Promise<string> {
  if (!agent.pod) return agent.problem ?? 'no running pod'
  try {
    const dump = JSON.parse(await podAdminGet(kube, namespace, agent.pod, AGENT_ADMIN_PORT, '/config_dump')) as {hubs?: HubAttachment[]}
    const hubs = Array.isArray(dump.hubs) ? dump.hubs : []
    const attachment = hubs.find((hub) => hub.hub === HUB_IDENTITY) ?? hubs[0]
    if (!attachment) return 'it has no --hub (restart it: install adds the hub to its arguments)'
    return `${attachment.state} to ${attachment.address}${attachment.lastError ? `: ${String(attachment.lastError).slice(0, 300)}` : ''}`
  } catch (error) {
    return `its admin port did not answer: ${(error as Error).message}`
  }
}

/** GET PATH from PORT on 127.0.0.1 inside POD, through a port-forward (the admin ports are not exposed). */
async function podAdminGet(kube: KubeClient, namespace: string, pod: string, port: number, adminPath: string): Promise<string> {
  const [{kubeModule}, {forwardPodPort}, {fetchAdmin}] = await Promise.all([import('../client.js'), import('../port-forward.js'), import('../../inspect/proxy-config.js')])
  const forwarded = await forwardPodPort({k8s: await kubeModule(), kc: kube.kubeConfig}, namespace, pod, port)
  try {
    return await fetchAdmin(`127.0.0.1:${forwarded.port}`, adminPath, port === HUB_ADMIN_PORT ? 'hub' : 'agent')
  } finally {
    forwarded.close()
  }
}

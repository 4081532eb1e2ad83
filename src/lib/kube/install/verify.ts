// `ztctl verify-install`: every object of the installed rendering is checked against the live cluster
// (istioctl's removed verify-install, and more): custom resources Established, Deployments and DaemonSets
// rolled out, every DaemonSet ready on every node, every object as install would apply it, and the controller
// answering its /ready through the API server's pods/proxy, and with the hub every agent attached to it
// (verify-hub.ts). A failed check says why and where to look.
import type {KubeClient} from '../rest.js'
import {CONTROLLER_NAME, HEALTH_PORT} from '../manifest/controller.js'
import {HOST_POD_NAME} from '../manifest/host-pod.js'
import {HUB_NAME} from '../manifest/hub.js'
import {type KubeObject, objectRef} from '../manifest/objects.js'
import type {Rendering} from '../manifest/render.js'
import {planApply, readObject} from './apply.js'
import {podProblems, rolloutStatus} from './rollout.js'
import type {HubAttachmentReport} from './verify-hub.js'

export interface Check {
  /** what to run to see more */
  hints: string[]
  /** the hub check's details: which agents are expected, attached, missing and why */
  hub?: HubAttachmentReport
  kind: string
  logTail?: string[]
  message: string
  name: string
  namespace?: string
  ok: boolean
}

export interface Verification {
  checks: Check[]
  counts: Record<string, number>
  failed: number
  namespace: string
  profile: string
}

export async function verifyInstall(kube: KubeClient, rendering: Rendering): Promise<Verification> {
  const checks: Check[] = []
  const nodes = await readyNodes(kube)
  checks.push(...(await Promise.all(rendering.objects.map(({object}) => checkObject(kube, object, nodes)))))
  checks.push(...(await checkControllerAnswers(kube, rendering.namespace)))
  if (renders(rendering, 'Service', HUB_NAME)) {
    checks.push(await checkEndpoints(kube, rendering.namespace, HUB_NAME, 'agents cannot attach to the hub'))
    const {checkHubAttachments} = await import('./verify-hub.js')
    const attachments = await checkHubAttachments(kube, rendering.namespace, {hostPod: renders(rendering, 'Deployment', HOST_POD_NAME)})
    checks.push({kind: 'Hub attachments', name: HUB_NAME, namespace: rendering.namespace, ...attachments})
  }

  const counts: Record<string, number> = {}
  for (const {object} of rendering.objects) counts[object.kind] = (counts[object.kind] ?? 0) + 1
  return {checks, counts, failed: checks.filter((check) => !check.ok).length, namespace: rendering.namespace, profile: rendering.profile}
}

const renders = (rendering: Rendering, kind: string, name: string): boolean => rendering.objects.some(({object}) => object.kind === kind && object.metadata.name === name)

interface NodeInfo {
  labels: Record<string, string>
  name: string
}

async function readyNodes(kube: KubeClient): Promise<NodeInfo[]> {
  const list = await kube.request<{items: KubeObject[]}>('GET', '/api/v1/nodes', {what: 'list the nodes'})
  return list.items
    .filter((node) => ((node.status as {conditions?: {status: string; type: string}[]}).conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'))
    .map((node) => ({labels: node.metadata.labels ?? {}, name: node.metadata.name}))
}

async function checkObject(kube: KubeClient, object: KubeObject, nodes: NodeInfo[]): Promise<Check> {
  const base = {hints: [], kind: object.kind, name: object.metadata.name, namespace: object.metadata.namespace}
  const live = await readObject(kube, object)
  if (!live) return {...base, hints: ['ztctl install'], message: 'not found', ok: false}
  if (object.kind === 'Namespace') return {...base, message: live.metadata.deletionTimestamp ? 'is being deleted' : 'exists', ok: !live.metadata.deletionTimestamp}
  if (object.kind === 'CustomResourceDefinition') {
    const established = ((live.status as {conditions?: {status: string; type: string}[]}).conditions ?? []).some((c) => c.type === 'Established' && c.status === 'True')
    if (!established) return {...base, hints: [`kubectl describe crd ${object.metadata.name}`], message: 'not Established', ok: false}
  }

  if (object.kind === 'Deployment' || object.kind === 'DaemonSet') {
    const workload = await checkWorkload(kube, live, nodes)
    if (workload) return {...base, ...workload}
  }

  const plan = await planApply(kube, object)
  if (plan.action !== 'unchanged') {
    return {...base, hints: ['ztctl install --dry-run   # shows the difference'], message: 'differs from what install applies with these values', ok: false}
  }

  return {...base, message: readyText(live), ok: true}
}

function readyText(live: KubeObject): string {
  if (live.kind !== 'Deployment' && live.kind !== 'DaemonSet') return 'checked successfully'
  return `checked successfully (${rolloutStatus(live).message})`
}

/** A failed rollout, a DaemonSet missing on a node, or undefined when the workload is fine. */
async function checkWorkload(kube: KubeClient, live: KubeObject, nodes: NodeInfo[]): Promise<Omit<Check, 'kind' | 'name' | 'namespace'> | undefined> {
  const ns = live.metadata.namespace!
  const status = rolloutStatus(live)
  const desired = (live.status as {desiredNumberScheduled?: number} | undefined)?.desiredNumberScheduled ?? 0
  const missing = live.kind === 'DaemonSet' ? await nodesWithoutReadyPod(kube, live, nodes) : []
  if (status.done && missing.length === 0 && (live.kind !== 'DaemonSet' || desired > 0)) return undefined
  const problems = await podProblems(kube, live)
  const first = problems[0]
  let message = status.done ? `${status.message}` : status.message
  if (live.kind === 'DaemonSet' && desired === 0) message = 'runs on no node (no Ready node matches its node selector)'
  if (missing.length > 0) message += `; not ready on node${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`
  if (first) message += `: pod ${first.pod}: ${first.message}`
  const hints = first
    ? [`kubectl -n ${ns} describe pod ${first.pod}`, ...(first.container ? [`kubectl -n ${ns} logs ${first.pod} -c ${first.container}${first.logTail ? ' --previous' : ''}`] : [])]
    : [`kubectl -n ${ns} describe ${live.kind.toLowerCase()} ${live.metadata.name}`]
  return {hints, logTail: first?.logTail, message, ok: false}
}

/** Ready nodes the DaemonSet selects (it tolerates every taint) that have no Ready pod of it. */
async function nodesWithoutReadyPod(kube: KubeClient, daemonSet: KubeObject, nodes: NodeInfo[]): Promise<string[]> {
  const spec = daemonSet.spec as {selector: {matchLabels: Record<string, string>}; template: {spec: {nodeSelector?: Record<string, string>}}}
  const nodeSelector = spec.template.spec.nodeSelector ?? {}
  const selected = nodes.filter((node) => Object.entries(nodeSelector).every(([key, value]) => node.labels[key] === value))
  const selector = Object.entries(spec.selector.matchLabels).map(([key, value]) => `${key}=${value}`).join(',')
  const pods = await kube.request<{items: KubeObject[]}>('GET', `/api/v1/namespaces/${daemonSet.metadata.namespace}/pods`, {query: {labelSelector: selector}, what: `list the pods of ${objectRef(daemonSet)}`})
  const readyOn = new Set(pods.items
    .filter((pod) => ((pod.status as {conditions?: {status: string; type: string}[]}).conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'))
    .map((pod) => (pod.spec as {nodeName?: string}).nodeName))
  return selected.filter((node) => !readyOn.has(node.name)).map((node) => node.name)
}

/** The controller serves: each Ready replica answers GET /ready (through pods/proxy), and its Service has endpoints. */
async function checkControllerAnswers(kube: KubeClient, namespace: string): Promise<Check[]> {
  const pods = await kube.request<{items: KubeObject[]}>('GET', `/api/v1/namespaces/${namespace}/pods`, {
    query: {labelSelector: `app.kubernetes.io/name=${CONTROLLER_NAME}`}, what: 'list the controller pods',
  })
  const running = pods.items.filter((pod) => (pod.status as {phase?: string}).phase === 'Running' && !pod.metadata.deletionTimestamp)
  const checks: Check[] = []
  for (const pod of running) {
    const name = pod.metadata.name
    const started = Date.now()
    const check = {hints: [] as string[], kind: 'Controller', name, namespace}
    try {
      await kube.request('GET', `/api/v1/namespaces/${namespace}/pods/${name}:${HEALTH_PORT}/proxy/ready`, {text: true, timeoutMs: 5000, what: `GET /ready of pod ${name}`})
      checks.push({...check, message: `answers /ready (${Date.now() - started} ms)`, ok: true})
    } catch (error) {
      checks.push({...check, hints: [`kubectl -n ${namespace} logs ${name}`], message: `does not answer /ready: ${(error as Error).message}`, ok: false})
    }
  }

  if (running.length === 0) {
    checks.push({hints: [`kubectl -n ${namespace} get pods -l app.kubernetes.io/name=${CONTROLLER_NAME}`], kind: 'Controller', message: 'no running controller pod to ask', name: CONTROLLER_NAME, namespace, ok: false})
  }

  checks.push(await checkEndpoints(kube, namespace, CONTROLLER_NAME, 'agents cannot reach the controller'))
  return checks
}

/** Service NAME has a ready address behind it (else: WITHOUT says what breaks). */
async function checkEndpoints(kube: KubeClient, namespace: string, name: string, without: string): Promise<Check> {
  const endpoints = await readObject(kube, {kind: 'Endpoints', metadata: {name, namespace}}).catch(() => undefined)
  const ready = ((endpoints?.subsets ?? []) as {addresses?: unknown[]}[]).reduce((sum, subset) => sum + (subset.addresses?.length ?? 0), 0)
  return {
    hints: ready > 0 ? [] : [`kubectl -n ${namespace} get endpoints ${name}`], kind: 'Service endpoints', message: ready > 0 ? `${ready} ready address${ready > 1 ? 'es' : ''}` : `no ready address: ${without}`,
    name, namespace, ok: ready > 0,
  }
}

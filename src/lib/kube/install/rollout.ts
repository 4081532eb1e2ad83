// Is a workload ready, the way `kubectl rollout status` decides it (observedGeneration, then updated,
// ready and available counts), and if not, why not, from its pods: the waiting reason (ErrImageNeverPull,
// CrashLoopBackOff …), the last termination, warning events (FailedMount, Unhealthy) and the last log lines.
import {ExitCode, ZtError} from '../../errors.js'
import type {KubeClient} from '../rest.js'
import {type KubeObject, objectRef} from '../manifest/objects.js'
import {readObject, sleep} from './apply.js'

export interface RolloutStatus {
  done: boolean
  message: string
}

interface WorkloadStatus {
  availableReplicas?: number
  conditions?: {reason?: string; type: string}[]
  currentNumberScheduled?: number
  desiredNumberScheduled?: number
  numberAvailable?: number
  numberReady?: number
  observedGeneration?: number
  readyReplicas?: number
  replicas?: number
  updatedNumberScheduled?: number
  updatedReplicas?: number
}

export function rolloutStatus(object: KubeObject): RolloutStatus {
  const status = (object.status ?? {}) as WorkloadStatus
  const generation = (object.metadata.generation as number | undefined) ?? 0
  if ((status.observedGeneration ?? 0) < generation) return {done: false, message: 'waiting for the new spec to be observed'}
  if (object.kind === 'Deployment') {
    const wanted = ((object.spec as {replicas?: number}).replicas) ?? 1
    const updated = status.updatedReplicas ?? 0
    const available = status.availableReplicas ?? 0
    if (status.conditions?.some((condition) => condition.type === 'Progressing' && condition.reason === 'ProgressDeadlineExceeded')) {
      return {done: false, message: 'the rollout exceeded its progress deadline'}
    }

    if (updated < wanted) return {done: false, message: `${updated} of ${wanted} updated replicas`}
    if ((status.replicas ?? 0) > updated) return {done: false, message: `${(status.replicas ?? 0) - updated} old replicas are pending termination`}
    if (available < updated) return {done: false, message: `${available} of ${updated} updated replicas are available`}
    return {done: true, message: `${available}/${wanted} replicas ready`}
  }

  const desired = status.desiredNumberScheduled ?? 0
  const updated = status.updatedNumberScheduled ?? 0
  const available = status.numberAvailable ?? 0
  if (updated < desired) return {done: false, message: `${updated} of ${desired} pods updated`}
  if (available < desired) return {done: false, message: `${available} of ${desired} pods ready`}
  return {done: true, message: `${available}/${desired} nodes ready`}
}

export interface PodProblem {
  container?: string
  /** the last log lines of the failing container (previous run when it restarted) */
  logTail?: string[]
  message: string
  node?: string
  pod: string
  /** the reason can only go away with a change to the values (ErrImageNeverPull, InvalidImageName) */
  terminal: boolean
}

const TERMINAL_REASONS = new Set(['ErrImageNeverPull', 'InvalidImageName'])

interface PodStatus {
  conditions?: {message?: string; reason?: string; status: string; type: string}[]
  containerStatuses?: {
    lastState?: {terminated?: {exitCode: number; reason?: string}}
    name: string
    ready: boolean
    restartCount: number
    state?: {running?: unknown; terminated?: {exitCode: number; reason?: string}; waiting?: {message?: string; reason?: string}}
  }[]
  phase?: string
}

/** What is wrong with the not-ready pods of a workload, in words. */
export async function podProblems(kube: KubeClient, workload: KubeObject, options: {logLines?: number} = {}): Promise<PodProblem[]> {
  const ns = workload.metadata.namespace!
  const matchLabels = ((workload.spec as {selector?: {matchLabels?: Record<string, string>}}).selector?.matchLabels) ?? {}
  const selector = Object.entries(matchLabels).map(([key, value]) => `${key}=${value}`).join(',')
  const pods = await kube.request<{items: KubeObject[]}>('GET', `/api/v1/namespaces/${ns}/pods`, {query: {labelSelector: selector}, what: `list the pods of ${objectRef(workload)}`})
  const problems: PodProblem[] = []
  for (const pod of pods.items) {
    if (pod.metadata.deletionTimestamp) continue
    const problem = await describePod(kube, pod, options.logLines ?? 10)
    if (problem) problems.push(problem)
  }

  return problems
}

/** Why a pod is not Ready, in words (undefined when it is). */
export async function describePod(kube: KubeClient, pod: KubeObject, logLines: number): Promise<PodProblem | undefined> {
  const status = (pod.status ?? {}) as PodStatus
  const name = pod.metadata.name
  const node = (pod.spec as {nodeName?: string}).nodeName
  const ready = status.conditions?.find((condition) => condition.type === 'Ready')
  if (ready?.status === 'True') return undefined
  const base = {node, pod: name}
  const unscheduled = status.conditions?.find((condition) => condition.type === 'PodScheduled' && condition.status === 'False')
  if (unscheduled) return {...base, message: `not scheduled: ${unscheduled.reason ?? ''} ${unscheduled.message ?? ''}`.trim(), terminal: false}
  for (const container of status.containerStatuses ?? []) {
    if (container.ready) continue
    const waiting = container.state?.waiting
    const exited = container.state?.terminated ?? container.lastState?.terminated
    // The log of the run that ended says why; a container that never ran has none.
    const tail = exited ? await logTail(kube, pod, container.name, logLines, !container.state?.terminated) : undefined
    const lastRun = exited && !container.state?.terminated
      ? ` (restarted ${container.restartCount} times; last run exited with code ${exited.exitCode}${exited.reason ? `, ${exited.reason}` : ''})`
      : ''
    const at = {...base, container: container.name, logTail: tail}
    if (waiting?.reason) {
      // ContainerCreating hides the real cause (FailedMount, FailedCreatePodSandBox…) in the pod's events.
      const stuck = waiting.reason === 'ContainerCreating' ? (await warningEvents(kube, pod)).at(-1) : undefined
      const why = stuck ? `; ${stuck.reason}: ${stuck.message}` : waiting.message ? `: ${waiting.message}` : ''
      return {...at, message: `container ${container.name} is waiting: ${waiting.reason}${why}${lastRun}`, terminal: TERMINAL_REASONS.has(waiting.reason)}
    }

    if (container.state?.terminated) {
      return {...at, message: `container ${container.name} exited with code ${exited!.exitCode}${exited!.reason ? ` (${exited!.reason})` : ''}`, terminal: false}
    }

    const probe = (await warningEvents(kube, pod)).findLast((event) => event.reason === 'Unhealthy')
    return {...at, message: `container ${container.name} is running but not ready${probe ? `: ${probe.message}` : ''}${lastRun}`, terminal: false}
  }

  // No container status yet: the pod is stuck before its containers start (volumes, sandbox, image).
  const events = await warningEvents(kube, pod)
  const latest = events.at(-1)
  return {...base, message: latest ? `${status.phase ?? 'Pending'}: ${latest.reason}: ${latest.message}` : `${status.phase ?? 'Pending'}: containers not started yet`, terminal: false}
}

async function logTail(kube: KubeClient, pod: KubeObject, container: string, lines: number, previous: boolean): Promise<string[] | undefined> {
  try {
    const text = await kube.request<string>('GET', `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}/log`, {
      query: {container, previous: previous || undefined, tailLines: lines}, text: true, timeoutMs: 5000, what: `read the logs of pod ${pod.metadata.name}`,
    })
    const out = text.split('\n').filter((line) => line.trim() !== '')
    return out.length > 0 ? out : undefined
  } catch {
    return undefined // logs are a help, not a requirement (no kubelet, previous run gone)
  }
}

async function warningEvents(kube: KubeClient, pod: KubeObject): Promise<{message: string; reason: string}[]> {
  const list = await kube.request<{items: {lastTimestamp?: string; message?: string; reason?: string; type?: string}[]}>('GET', `/api/v1/namespaces/${pod.metadata.namespace}/events`, {
    query: {fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${pod.metadata.name}`}, what: `list the events of pod ${pod.metadata.name}`,
  })
  return list.items
    .filter((event) => event.type === 'Warning')
    .sort((a, b) => (a.lastTimestamp ?? '').localeCompare(b.lastTimestamp ?? ''))
    .map((event) => ({message: (event.message ?? '').trim(), reason: event.reason ?? ''}))
}

/**
 * Wait until a Deployment or DaemonSet is rolled out. Fails at once on a reason that cannot heal by itself
 * (ErrImageNeverPull), else at the deadline, with the pods' problems in the error's details.
 */
export async function waitRollout(kube: KubeClient, workload: KubeObject, deadline: number, onProgress: (message: string) => void): Promise<RolloutStatus> {
  let polls = 0
  while (true) {
    const live = await readObject(kube, workload)
    if (!live) throw new ZtError('ZT_ERR_KUBE_NOT_FOUND', `${objectRef(workload)} disappeared while waiting for it`, {exit: ExitCode.failure})
    const status = rolloutStatus(live)
    if (status.done) return status
    onProgress(status.message)
    // Look at the pods every second or so: often enough to fail fast, cheap enough to poll.
    if (polls++ % 4 === 3 || Date.now() > deadline) {
      const problems = await podProblems(kube, live)
      const terminal = problems.filter((problem) => problem.terminal)
      if (terminal.length > 0 || Date.now() > deadline) throw rolloutError(live, status, terminal.length > 0 ? terminal : problems, Date.now() > deadline)
    }

    await sleep(250)
  }
}

function rolloutError(workload: KubeObject, status: RolloutStatus, problems: PodProblem[], timedOut: boolean): ZtError {
  const ns = workload.metadata.namespace
  const first = problems[0]
  const why = first ? `${first.pod}${first.node ? ` on node ${first.node}` : ''}: ${first.message}` : status.message
  return new ZtError('ZT_ERR_NOT_READY', `${objectRef(workload)} is not ready${timedOut ? ' (readiness timeout)' : ''}: ${why}`, {
    details: {problems, status: status.message, workload: objectRef(workload)},
    exit: ExitCode.failure,
    suggestion: first ? `kubectl -n ${ns} describe pod ${first.pod}${first.container ? `; kubectl -n ${ns} logs ${first.pod} -c ${first.container}` : ''}` : `kubectl -n ${ns} describe ${workload.kind.toLowerCase()} ${workload.metadata.name}`,
  })
}

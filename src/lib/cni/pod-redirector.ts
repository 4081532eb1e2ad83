// The node side of enrollment: which pods of this node get in-pod redirection, and when. At a CNI ADD the
// plugin's request is decided at once (before the pod's containers start): an enrolled pod gets its rules
// (`redirect add`'s library: rules + routing in the pod's netns, the record in the shared state directory, the
// add message to the node agent on its in-pod socket). A reconcile pass over the node's pods catches what no
// ADD could: pods that started before the agent (or while it restarted), and pods whose namespace label or
// opt-out annotation changed since — their netns is found by address among the runtime's namespaces. Every
// change goes through one queue, so an ADD and a reconcile never work on the same pod at once.
import {readdir} from 'node:fs/promises'
import path from 'node:path'

import {type EnrollmentOptions, enrollmentOf, serviceAccountOf} from '../kube/enrollment.js'
import type {Logger} from '../log/logger.js'
import {probeAgent} from '../redirect/agent-client.js'
import type {BackendRequest} from '../redirect/backend.js'
import {addRedirect, removeRedirect} from '../redirect/redirect.js'
import {listRecords, workloadUid} from '../redirect/state.js'
import {readNetnsAddresses} from '../redirect/target.js'
import type {NodePods, PodWithNamespace} from './node-pods.js'
import {CniErrorCode, type CniPluginRequest} from './plugin-protocol.js'

export interface PodRedirectorOptions {
  pods: NodePods
  enrollment?: EnrollmentOptions
  /** the node agent's in-pod socket, and the state directory it loads on start */
  agentSocket: string
  stateDir: string
  /** where the container runtime keeps pods' network namespaces (as seen by this process) */
  netnsDir: string
  backend?: BackendRequest
  logger: Logger
}

export interface ReconcileResult {
  added: string[]
  removed: string[]
  problems: string[]
}

type CniReply = {code: number; message: string} | undefined

const MAX_NETNS_SCAN = 4096

export class PodRedirector {
  private queue: Promise<unknown> = Promise.resolve()

  constructor(private readonly options: PodRedirectorOptions) {}

  /** The answer to one plugin request. Never throws. */
  handle(request: CniPluginRequest): Promise<CniReply> {
    return this.serialized(async () => {
      try {
        if (!request.pod) return undefined // a sandbox that is no Kubernetes pod
        if (request.command === 'DEL') return await this.onDelete(request.pod.namespace, request.pod.name)
        if (request.command === 'ADD') return await this.onAdd(request)
        return undefined
      } catch (error) {
        this.options.logger.warn({command: request.command, error: (error as Error).message, pod: request.pod}, 'CNI request failed')
        return {code: CniErrorCode.tryAgainLater, message: (error as Error).message}
      }
    })
  }

  /** Bring the node's pods in line with their enrollment (see the file's comment). */
  reconcile(): Promise<ReconcileResult> {
    return this.serialized(async () => {
      const result: ReconcileResult = {added: [], removed: [], problems: []}
      const pods = await this.options.pods.onNode()
      const records = new Map((await listRecords(this.options.stateDir)).map((record) => [record.add.uid, record]))
      const missing: PodWithNamespace[] = []
      for (const entry of pods) {
        const {name = '', namespace = ''} = entry.pod.metadata ?? {}
        const uid = workloadUid(namespace, name)
        const wanted = enrollmentOf(entry.pod, entry.namespace, this.options.enrollment).enrolled && !entry.pod.metadata?.deletionTimestamp
        const record = records.get(uid)
        records.delete(uid)
        if (wanted && !record && entry.pod.status?.podIP) missing.push(entry)
        if (!wanted && record) await this.unredirect(namespace, name, result)
      }

      // records of pods that no longer exist (a DEL this agent did not see)
      for (const record of records.values()) await this.unredirect(record.add.workload.namespace, record.add.workload.name, result)
      if (missing.length > 0) await this.redirectRunning(missing, result)
      return result
    })
  }

  /** Uninstall: every pod of this node back to plain networking. */
  removeAll(): Promise<ReconcileResult> {
    return this.serialized(async () => {
      const result: ReconcileResult = {added: [], removed: [], problems: []}
      for (const record of await listRecords(this.options.stateDir)) await this.unredirect(record.add.workload.namespace, record.add.workload.name, result)
      return result
    })
  }

  private async onAdd(request: CniPluginRequest): Promise<CniReply> {
    const {name, namespace} = request.pod!
    const found = await this.options.pods.pod(namespace, name)
    if (!found) return undefined
    const decision = enrollmentOf(found.pod, found.namespace, this.options.enrollment)
    if (!decision.enrolled) {
      this.options.logger.debug({pod: `${namespace}/${name}`, reason: decision.reason}, `pod not enrolled: ${decision.detail}`)
      return undefined
    }

    const inside = path.relative(this.options.netnsDir, request.netns)
    if (inside.startsWith('..') || path.isAbsolute(inside)) {
      return {code: CniErrorCode.redirectFailed, message: `the pod's netns ${request.netns} is outside ${this.options.netnsDir} (values cni.netnsDir), where the node agent can enter it`}
    }

    // Fail closed: an enrolled pod does not start without the node agent (the runtime retries the sandbox).
    const agent = await probeAgent(this.options.agentSocket)
    if (!agent.ok) return {code: CniErrorCode.tryAgainLater, message: `the node agent is not ready: ${agent.message}`}
    await this.redirect(found, request.netns, request.ips)
    return undefined
  }

  private async onDelete(namespace: string, name: string): Promise<CniReply> {
    const result: ReconcileResult = {added: [], removed: [], problems: []}
    const records = await listRecords(this.options.stateDir)
    if (records.some((record) => record.add.uid === workloadUid(namespace, name))) await this.unredirect(namespace, name, result)
    return undefined // DEL succeeds: what could not be undone is logged
  }

  private async redirect(entry: PodWithNamespace, netns: string, ips: string[]): Promise<void> {
    const {name = '', namespace = ''} = entry.pod.metadata ?? {}
    const result = await addRedirect({
      agentSocket: this.options.agentSocket, backend: this.options.backend, ips: ips.length > 0 ? ips : undefined, netns,
      serviceAccount: serviceAccountOf(entry.pod), stateDir: this.options.stateDir, workload: `${namespace}/${name}`,
    })
    this.options.logger.info({backend: result.backend, ips: result.ips, netns, pod: `${namespace}/${name}`, warnings: result.warnings}, 'pod redirected')
  }

  private async unredirect(namespace: string, name: string, result: ReconcileResult): Promise<void> {
    try {
      const removed = await removeRedirect({agentSocket: this.options.agentSocket, stateDir: this.options.stateDir, workload: `${namespace}/${name}`})
      this.options.logger.info({netns: removed.netns, pod: `${namespace}/${name}`, warnings: removed.warnings}, 'pod redirection removed')
      result.removed.push(`${namespace}/${name}`)
    } catch (error) {
      result.problems.push(`${namespace}/${name}: ${(error as Error).message}`)
      this.options.logger.warn({error: (error as Error).message, pod: `${namespace}/${name}`}, 'pod redirection not removed')
    }
  }

  /** Pods already running: find each one's netns by its address, then redirect it. */
  private async redirectRunning(pods: PodWithNamespace[], result: ReconcileResult): Promise<void> {
    const agent = await probeAgent(this.options.agentSocket)
    if (!agent.ok) {
      result.problems.push(`${pods.length} pod(s) wait for the node agent: ${agent.message}`)
      return
    }

    const byIp = await this.netnsByAddress()
    for (const entry of pods) {
      const pod = `${entry.pod.metadata?.namespace}/${entry.pod.metadata?.name}`
      const netns = byIp.get(entry.pod.status!.podIP!)
      if (!netns) {
        result.problems.push(`${pod}: no network namespace in ${this.options.netnsDir} has its address ${entry.pod.status!.podIP}`)
        continue
      }

      try {
        await this.redirect(entry, netns, (entry.pod.status?.podIPs ?? []).map((ip) => ip.ip).filter(Boolean))
        result.added.push(pod)
      } catch (error) {
        result.problems.push(`${pod}: ${(error as Error).message}`)
      }
    }
  }

  private async netnsByAddress(): Promise<Map<string, string>> {
    const byIp = new Map<string, string>()
    const names = await readdir(this.options.netnsDir).catch(() => [] as string[])
    for (const name of names.slice(0, MAX_NETNS_SCAN)) {
      const netns = path.join(this.options.netnsDir, name)
      const ips = await readNetnsAddresses(netns).catch(() => [] as string[])
      for (const ip of ips) byIp.set(ip, netns)
    }

    return byIp
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work)
    this.queue = run.catch(() => {})
    return run
  }
}

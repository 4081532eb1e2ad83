// Enrolled pods as mesh workloads (issue 12 §1): the pure mapping from the API objects the informers
// hold to the `workload` resources the controller publishes. A workload is keyed by the pod's uid and
// names the node agent that serves it (`node-<spec.nodeName>`, the identity that agent enrolls as), so
// the agent of that node redirects it and asks for its certificate, and every other agent dials it.
import type {V1EndpointSlice, V1Namespace, V1Pod, V1Service} from '@kubernetes/client-node'

import type {WorkloadRecord, WorkloadService} from '../config/types.js'
import {DEFAULT_EXCLUDED_NAMESPACES, enrollmentOf, type EnrollmentOptions, serviceAccountOf} from './enrollment.js'
import {NODE_AGENT_SERVICE_ACCOUNT} from './objects.js'

export const HBONE_PORT = 15_008
/** The identity a node's agent enrolls as (kstore's node-enroll.ts issues it under this name). */
export const nodeAgentName = (node: string): string => `node-${node}`

/** What the mapping reads: the namespaces and pods of the cache, and where the node agents run. */
export interface ClusterView {
  endpointSlices(): readonly V1EndpointSlice[]
  namespace(name: string): undefined | V1Namespace
  pods(): readonly V1Pod[]
  services(): readonly V1Service[]
}

/** The pod's addresses (status.podIPs, else status.podIP), without duplicates. */
export function podIps(pod: Pick<V1Pod, 'status'>): string[] {
  const listed = (pod.status?.podIPs ?? []).map((entry) => entry.ip).filter((ip): ip is string => Boolean(ip))
  const ips = listed.length > 0 ? listed : pod.status?.podIP ? [pod.status.podIP] : []
  return [...new Set(ips)]
}

/**
 * The workload of POD, or undefined when it is not (yet) one: not enrolled, not scheduled, or without an
 * address. AGENT_HBONE gives the HBONE address of each node's agent ('' while that agent has no pod IP).
 */
export function podWorkload(pod: V1Pod, namespace: undefined | V1Namespace, agentHbone: (node: string) => string, options: EnrollmentOptions = {}): undefined | WorkloadRecord {
  if (!enrollmentOf(pod, namespace, options).enrolled) return undefined
  const {name, namespace: ns, uid} = pod.metadata ?? {}
  const node = pod.spec?.nodeName
  const ips = podIps(pod)
  if (!name || !ns || !uid || !node || ips.length === 0) return undefined
  return {hbone: agentHbone(node), ips, name, namespace: ns, node: nodeAgentName(node), serviceAccount: serviceAccountOf(pod), uid}
}

/** Node name → `IP:15008` of the node agent pod running there (pods of ServiceAccount ztctl-node in the install namespace). */
export function nodeAgentAddresses(pods: readonly V1Pod[], installNamespace: string): Map<string, string> {
  const addresses = new Map<string, string>()
  for (const pod of pods) {
    if (pod.metadata?.namespace !== installNamespace || pod.spec?.serviceAccountName !== NODE_AGENT_SERVICE_ACCOUNT) continue
    const node = pod.spec.nodeName
    const ip = podIps(pod)[0]
    if (node && ip && pod.status?.phase === 'Running') addresses.set(node, `${ip.includes(':') ? `[${ip}]` : ip}:${HBONE_PORT}`)
  }

  return addresses
}

/** Every workload the cluster should have now, by uid. */
export function desiredWorkloads(view: ClusterView, options: EnrollmentOptions & {installNamespace: string}): Map<string, WorkloadRecord> {
  const pods = view.pods()
  const agents = nodeAgentAddresses(pods, options.installNamespace)
  // The install's own namespace never joins, whatever it is called.
  const excluded = {excludedNamespaces: [...(options.excludedNamespaces ?? DEFAULT_EXCLUDED_NAMESPACES), options.installNamespace]}
  const services = servicesByPod(view.services(), view.endpointSlices())
  const workloads = new Map<string, WorkloadRecord>()
  for (const pod of pods) {
    const workload = podWorkload(pod, view.namespace(pod.metadata?.namespace ?? ''), (node) => agents.get(node) ?? '', excluded)
    if (!workload) continue
    const backed = services.get(workload.uid)
    workloads.set(workload.uid, backed ? {...workload, services: backed} : workload)
  }

  return workloads
}

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name'

/**
 * Pod uid → the Services it is a ready endpoint of, from their EndpointSlices: each TCP service port with
 * the pod port the slice gives for it (ports match by name, as kube-proxy matches them). Headless Services
 * (no ClusterIP) have no address to capture and are left out.
 */
export function servicesByPod(services: readonly V1Service[], slices: readonly V1EndpointSlice[]): Map<string, WorkloadService[]> {
  const byName = new Map(services.map((service) => [`${service.metadata?.namespace}/${service.metadata?.name}`, service]))
  const found = new Map<string, Map<string, WorkloadService>>()
  for (const slice of slices) {
    const name = `${slice.metadata?.namespace}/${slice.metadata?.labels?.[SERVICE_NAME_LABEL]}`
    const service = byName.get(name)
    const vips = (service?.spec?.clusterIPs ?? [service?.spec?.clusterIP]).filter((ip): ip is string => Boolean(ip) && ip !== 'None')
    if (!service || vips.length === 0) continue
    const ports = (service.spec?.ports ?? []).flatMap((servicePort) => {
      if ((servicePort.protocol ?? 'TCP') !== 'TCP') return []
      const slicePort = (slice.ports ?? []).find((entry) => (entry.name ?? '') === (servicePort.name ?? '') && (entry.protocol ?? 'TCP') === 'TCP')
      return slicePort?.port ? [{port: servicePort.port, targetPort: slicePort.port}] : []
    })
    if (ports.length === 0) continue
    for (const endpoint of slice.endpoints ?? []) {
      const uid = endpoint.targetRef?.kind === 'Pod' ? endpoint.targetRef.uid : undefined
      if (!uid || endpoint.conditions?.ready === false) continue
      const entries = found.get(uid) ?? new Map<string, WorkloadService>()
      const entry = entries.get(name) ?? {name, ports: [], vips}
      for (const port of ports) if (!entry.ports.some((known) => known.port === port.port)) entry.ports.push(port)
      entry.ports.sort((a, b) => a.port - b.port)
      entries.set(name, entry)
      found.set(uid, entries)
    }
  }

  return new Map([...found].map(([uid, entries]) => [uid, [...entries.values()].sort((a, b) => a.name.localeCompare(b.name))]))
}

/** Pods of NAMESPACE/SERVICE_ACCOUNT scheduled on NODE (any phase but finished), what a node-bound certificate needs. */
export function podsOn(pods: readonly V1Pod[], node: string, namespace: string, serviceAccount: string): V1Pod[] {
  return pods.filter((pod) =>
    pod.spec?.nodeName === node && pod.metadata?.namespace === namespace && serviceAccountOf(pod) === serviceAccount
    && pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed')
}

const servicesText = (workload: WorkloadRecord): string =>
  (workload.services ?? []).map((service) => `${service.name} ${service.vips.join(',')} ${service.ports.map((port) => `${port.port}>${port.targetPort}`).join(',')}`).join(';')

/** Same records, field by field (the store returns what was put, in any key order). */
export function sameWorkload(a: WorkloadRecord, b: WorkloadRecord): boolean {
  return servicesText(a) === servicesText(b) && a.hbone === b.hbone && a.name === b.name && a.namespace === b.namespace && a.node === b.node && a.serviceAccount === b.serviceAccount
    && a.uid === b.uid && a.ips.length === b.ips.length && a.ips.every((ip, index) => b.ips[index] === ip)
}

// Kubernetes Services as redirected pods reach them (issue 12 §1): a connection captured at 15001 whose
// original destination is a Service's ClusterIP and port goes to one of the Service's endpoint pods — the
// workloads whose `services` name that VIP — at the pod's target port, as HBONE to that pod (or by the
// local fast path when it runs on this node), as ztunnel does. kube-proxy never sees it: in-pod capture
// runs before the pod's packets leave its network namespace. Built once per configuration version.
import type {WorkloadRecord} from '../config/types.js'
import {normalizeIp} from '../proxy/address.js'
import type {MeshState} from '../proxy/state/state.js'

export interface ClusterIpEndpoint {
  workload: WorkloadRecord
  /** the endpoint pod's address and port to carry the connection to */
  address: string
  port: number
  /** `namespace/name` of the Service */
  service: string
}

const indexes = new WeakMap<MeshState, Map<string, ClusterIpEndpoint[]>>()

function indexOf(state: MeshState): Map<string, ClusterIpEndpoint[]> {
  let index = indexes.get(state)
  if (index) return index
  index = new Map()
  // Sorted, so every agent sees the endpoints in the same order.
  for (const workload of Object.values(state.snapshot.workload ?? {}).sort((a, b) => a.uid.localeCompare(b.uid))) {
    const address = workload.ips[0]
    if (!address) continue
    for (const service of workload.services ?? []) {
      for (const vip of service.vips) {
        for (const {port, targetPort} of service.ports) {
          const key = `${normalizeIp(vip)}|${port}`
          const list = index.get(key) ?? []
          list.push({address, port: targetPort, service: service.name, workload})
          index.set(key, list)
        }
      }
    }
  }

  indexes.set(state, index)
  return index
}

/** The endpoints behind VIP:PORT (empty when it is not a Service's ClusterIP). */
export function clusterIpEndpoints(state: MeshState, address: string, port: number): readonly ClusterIpEndpoint[] {
  return indexOf(state).get(`${normalizeIp(address)}|${port}`) ?? []
}

/** One endpoint for a new connection: LOCAL first when one runs on this node (no HBONE hop), else at random. */
export function pickEndpoint(endpoints: readonly ClusterIpEndpoint[], isLocal: (endpoint: ClusterIpEndpoint) => boolean, random = Math.random): ClusterIpEndpoint | undefined {
  if (endpoints.length === 0) return undefined
  const local = endpoints.filter(isLocal)
  const pool = local.length > 0 ? local : endpoints
  return pool[Math.floor(random() * pool.length)]
}

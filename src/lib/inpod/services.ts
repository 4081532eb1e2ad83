// Mesh services as redirected pods see them: every intercept of every inbound tunnel in the mesh. Host
// names get their stable 100.64.0.0/10 address (allocated over the mesh-wide set of names, exactly as the
// tproxy sidecars do, so a name has the same address in a pod and in a sidecar); the pod's DNS answers
// them, and a connection captured at 15001 whose original destination is such an address (or falls in
// an intercepted CIDR) is carried to that service. Built once per configuration version.
import {cidrContains, normalizeIp} from '../proxy/address.js'
import type {MeshState} from '../proxy/state/state.js'
import {allocateInterceptAddresses} from '../sidecar/addresses.js'
import {parseIntercept} from '../sidecar/intercept.js'

interface AddressEntry {
  /** an IPv4 CIDR (a host name's address as /32) */
  cidr: string
  /** only this destination port is the service; undefined: any */
  port?: number
  prefix: number
  service: string
}

export interface MeshServiceBook {
  /** intercepted host name → its 100.64.0.0/10 address (what the pods' DNS answers) */
  records: ReadonlyMap<string, string>
  /** The service a connection to ADDRESS:PORT is for, if any (most specific CIDR first). */
  serviceAt(address: string, port: number): string | undefined
}

const books = new WeakMap<MeshState, MeshServiceBook>()

export function meshServices(state: MeshState): MeshServiceBook {
  let book = books.get(state)
  if (!book) {
    book = buildBook(state)
    books.set(state, book)
  }

  return book
}

function buildBook(state: MeshState): MeshServiceBook {
  const parsed = Object.values(state.snapshot.inbound)
    // Sorted, so two tunnels claiming one name resolve the same way on every agent.
    .sort((a, b) => a.service.localeCompare(b.service) || a.agent.localeCompare(b.agent))
    .flatMap((tunnel) => (tunnel.intercept ?? []).map((text) => ({intercept: parseIntercept(text), service: tunnel.service})))
  const records = allocateInterceptAddresses(parsed.flatMap(({intercept}) => (intercept?.kind === 'host' ? [intercept.host] : [])))
  const entries: AddressEntry[] = []
  for (const {intercept, service} of parsed) {
    if (!intercept) continue
    const cidr = intercept.kind === 'cidr' ? intercept.cidr : `${records.get(intercept.host)}/32`
    entries.push({cidr, port: intercept.port, prefix: Number(cidr.split('/')[1]), service})
  }

  entries.sort((a, b) => b.prefix - a.prefix)
  return {
    records,
    serviceAt(address, port) {
      const ip = normalizeIp(address)
      return entries.find((entry) => (entry.port === undefined || entry.port === port) && cidrContains(entry.cidr, ip))?.service
    },
  }
}

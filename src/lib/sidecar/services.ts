// "Services this identity may dial": every service some agent hosts whose hosting tunnel's `allow` list
// and the mesh's policies let this identity in, for at least one target port — the same decision the
// hosting agent will make (src/lib/proxy/state/authz.ts), taken ahead of time so a sidecar only binds or
// intercepts what can work. The hosting agent still decides each connection.
import type {OutboundTunnel, Policy} from '../config/types.js'
import {authorize} from '../proxy/state/authz.js'
import type {MeshState} from '../proxy/state/state.js'
import {allocateInterceptAddresses} from './addresses.js'
import {type Intercept, parseIntercept} from './intercept.js'

export interface DialableService {
  /** what a tproxy sidecar captures: parsed from this agent's inbound tunnels of the service */
  intercepts: Intercept[]
  service: string
}

export interface InterceptPlan {
  /** names the sidecar's DNS answers (every intercept host name of the mesh, dialable or not) */
  dnsRecords: Map<string, string>
  /** intercept entries that could not be read (reported, skipped) */
  invalid: string[]
  services: DialableService[]
}

/**
 * Source CIDRs are judged by the hosting agent against an address only it sees, so ahead of time a
 * policy with source CIDRs "may" match: its ALLOW counts, its DENY does not rule the service out.
 */
function optimisticPolicies(policies: Iterable<Policy>): Policy[] {
  return [...policies]
    .filter((policy) => !(policy.action === 'DENY' && policy.sourceCidrs.length > 0))
    .map((policy) => ({...policy, sourceCidrs: []}))
}

export function mayDial(state: MeshState, tunnel: OutboundTunnel, policies: readonly Policy[]): boolean {
  const {name, trustDomain} = state.self
  const identity = state.snapshot.identity[name]
  const source = {sourceIdentity: name, sourceRoles: identity?.roles ?? [], sourceSpiffe: identity?.spiffe ?? `spiffe://${trustDomain}/identity/${name}`}
  return tunnel.targets.some((target) => authorize({...source, destinationPort: target.port, service: tunnel.service, sourceAddress: ''}, policies, tunnel.allow).allowed)
}

/** The dialable services (sorted by name) with their intercepts, and the DNS names of the whole mesh. */
export function planIntercepts(state: MeshState): InterceptPlan {
  const policies = optimisticPolicies(Object.values(state.snapshot.policy))
  const dialable = new Set<string>()
  for (const tunnel of Object.values(state.snapshot.outbound)) {
    if (state.snapshot.agent[tunnel.agent] && mayDial(state, tunnel, policies)) dialable.add(tunnel.service)
  }

  const invalid: string[] = []
  const hostNames: string[] = []
  const interceptsOf = new Map<string, Intercept[]>()
  for (const tunnel of Object.values(state.snapshot.inbound)) {
    for (const text of tunnel.intercept ?? []) {
      const intercept = parseIntercept(text)
      if (!intercept) {
        invalid.push(`${tunnel.service}@${tunnel.agent}: ${JSON.stringify(text)}`)
        continue
      }

      // Every agent allocates over the same (mesh-wide) set of names, so the addresses agree everywhere.
      if (intercept.kind === 'host') hostNames.push(intercept.host)
      if (tunnel.agent === state.self.name) interceptsOf.set(tunnel.service, [...(interceptsOf.get(tunnel.service) ?? []), intercept])
    }
  }

  const services = [...dialable].sort().map((service) => ({intercepts: interceptsOf.get(service) ?? [], service}))
  const allocation = allocateInterceptAddresses(hostNames)
  const answered = new Set(services.flatMap((entry) => entry.intercepts.flatMap((intercept) => (intercept.kind === 'host' ? [intercept.host] : []))))
  const dnsRecords = new Map([...allocation].filter(([name]) => answered.has(name)))
  return {dnsRecords, invalid, services}
}

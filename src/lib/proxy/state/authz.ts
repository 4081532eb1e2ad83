// L4 authorization with ztunnel's semantics (see docs/hbone.md "Authorization"):
//   1. the hosting tunnel's `allow` list, when not empty, must name the source (`@name` / `#role`);
//   2. any matching DENY policy rejects;
//   3. no ALLOW policy for the service → allow;
//   4. any matching ALLOW policy → allow; else deny.
// Pure functions: the same inputs give the same decision, so live connections can be re-checked after
// every configuration change. `ztctl policy explain` runs this very function with a trace attached.
import type {IdentitySummary, Policy, ServiceName} from '../../config/types.js'
import {cidrContains} from '../address.js'

/** Everything a decision looks at, known once the CONNECT arrived. */
export interface AuthzRequest {
  /** the destination port (the target's port) */
  destinationPort: number
  service: ServiceName
  /** the address of the peer that connected to our HBONE port */
  sourceAddress: string
  /** the source identity name, undefined when the certificate carried no ztctl SPIFFE ID */
  sourceIdentity?: string
  /** a workload source (`spiffe://TD/ns/NS/sa/SA`): its namespace and service account */
  sourceNamespace?: string
  sourceServiceAccount?: string
  /** roles of the source identity (from the `identity` resources) */
  sourceRoles: readonly string[]
  sourceSpiffe?: string
}

export type AuthzDecision =
  | {allowed: true; policy?: string}
  /** allowList: refused by the hosting tunnel's (or app's) allow list rather than by a policy */
  | {allowList?: boolean; allowed: false; policy?: string; reason: string}

/** The policy field that did not match (fields AND together). */
export type PolicyMismatch = 'from' | 'ports' | 'sourceCidrs'

/** One check `authorize` made, in its order; what `policy explain` shows. */
export type AuthzStep =
  | {allow: readonly string[]; matched: boolean; step: 'allow-list'}
  | {matched: boolean; step: 'mesh-source'}
  | {action: Policy['action']; mismatch?: PolicyMismatch; policy: string; step: 'policy'}
  | {action: Policy['action']; policy: string; services: readonly ServiceName[]; step: 'other-services'}

/** Receives every step of a decision; agents pass none. */
export type AuthzTrace = (step: AuthzStep) => void

type SourceFields = Pick<AuthzRequest, 'sourceIdentity' | 'sourceNamespace' | 'sourceRoles' | 'sourceServiceAccount' | 'sourceSpiffe'>

/** A source of this mesh: an identity, or a workload (namespace + service account). */
const isMeshSource = (request: SourceFields): boolean => request.sourceIdentity !== undefined || request.sourceServiceAccount !== undefined
const describeSource = (request: SourceFields): string =>
  request.sourceIdentity === undefined ? `workload ${request.sourceNamespace}/${request.sourceServiceAccount}` : `identity "${request.sourceIdentity}"`

/** Whether one `from` entry (`@name`, `#role`, `ns:NS`, `sa:NS/SA`, `spiffe://…`, `*`) matches the source. */
export function principalMatches(selector: string, request: SourceFields): boolean {
  if (selector === '*') return isMeshSource(request)
  if (selector.startsWith('ns:')) return request.sourceNamespace !== undefined && selector.slice(3) === request.sourceNamespace
  if (selector.startsWith('sa:')) return request.sourceServiceAccount !== undefined && selector.slice(3) === `${request.sourceNamespace}/${request.sourceServiceAccount}`
  if (selector.startsWith('@')) return request.sourceIdentity !== undefined && selector.slice(1) === request.sourceIdentity
  if (selector.startsWith('#')) return request.sourceRoles.includes(selector.slice(1))
  if (selector.startsWith('spiffe://')) return selector === request.sourceSpiffe
  return false
}

/** A policy matches when every non-empty field matches (AND); within a field any value may match (OR). */
export function policyMismatch(policy: Policy, request: AuthzRequest): PolicyMismatch | undefined {
  if (policy.from.length > 0 && !policy.from.some((selector) => principalMatches(selector, request))) return 'from'
  if (policy.sourceCidrs.length > 0 && !policy.sourceCidrs.some((cidr) => cidrContains(cidr, request.sourceAddress))) return 'sourceCidrs'
  if (policy.ports.length > 0 && !policy.ports.includes(request.destinationPort)) return 'ports'
  return undefined
}

export const policyMatches = (policy: Policy, request: AuthzRequest): boolean => policyMismatch(policy, request) === undefined

export function policyApplies(policy: Policy, service: ServiceName): boolean {
  return policy.services.length === 0 || policy.services.includes(service)
}

/**
 * Decide one connection. `allow` is the hosting tunnel's allow list (empty: any mesh identity).
 * Policies are evaluated in name order so the reported policy is deterministic: DENY first, then ALLOW,
 * then the default. TRACE, when given, sees every check in the order it was made.
 */
export function authorize(request: AuthzRequest, policies: Iterable<Policy>, allow: readonly string[] = [], trace?: AuthzTrace): AuthzDecision {
  const meshSource = isMeshSource(request)
  trace?.({matched: meshSource, step: 'mesh-source'})
  if (!meshSource) return {allowed: false, reason: 'the peer certificate carries no identity of this mesh'}
  if (allow.length > 0) {
    const listed = allow.some((selector) => principalMatches(selector, request))
    trace?.({allow, matched: listed, step: 'allow-list'})
    if (!listed) return {allowList: true, allowed: false, reason: `${describeSource(request)} is not in the allow list of ${request.service} (${allow.join(', ')})`}
  }

  const sorted = [...policies].sort((a, b) => a.name.localeCompare(b.name))
  const applicable = sorted.filter((policy) => {
    const applies = policyApplies(policy, request.service)
    if (!applies) trace?.({action: policy.action, policy: policy.name, services: policy.services, step: 'other-services'})
    return applies
  })
  const evaluate = (policy: Policy): boolean => {
    const mismatch = policyMismatch(policy, request)
    trace?.({action: policy.action, mismatch, policy: policy.name, step: 'policy'})
    return mismatch === undefined
  }

  const deny = applicable.find((policy) => policy.action === 'DENY' && evaluate(policy))
  if (deny) return {allowed: false, policy: deny.name, reason: `denied by policy "${deny.name}"`}
  const allows = applicable.filter((policy) => policy.action === 'ALLOW')
  if (allows.length === 0) return {allowed: true}
  const match = allows.find((policy) => evaluate(policy))
  if (match) return {allowed: true, policy: match.name}
  return {allowed: false, reason: `no ALLOW policy matches (checked ${allows.map((policy) => `"${policy.name}"`).join(', ')})`}
}

/** What a hosting agent knows of a connection before it decides: its SPIFFE ID, address, service and port. */
export type ConnectionFacts = Omit<AuthzRequest, 'sourceIdentity' | 'sourceNamespace' | 'sourceRoles' | 'sourceServiceAccount' | 'sourceSpiffe'> & {sourceSpiffe?: string}

/**
 * The decision an agent makes for one connection: the source's roles from the `identity` resources,
 * then `authorize` with every policy. Agents and `policy explain` both call this.
 */
export function authorizeConnection(
  facts: ConnectionFacts,
  config: {identity: Record<string, IdentitySummary>; policy: Record<string, Policy>},
  trustDomain: string,
  allow: readonly string[] = [],
  trace?: AuthzTrace,
): AuthzDecision {
  return authorize({...facts, ...sourceOf(facts.sourceSpiffe, trustDomain, config.identity)}, Object.values(config.policy), allow, trace)
}

/** `spiffe://TD/identity/NAME` → NAME, when the ID belongs to TRUST_DOMAIN. */
export function identityNameFromSpiffe(spiffe: string | undefined, trustDomain: string): string | undefined {
  if (!spiffe) return undefined
  const prefix = `spiffe://${trustDomain}/identity/`
  if (!spiffe.startsWith(prefix)) return undefined
  const name = spiffe.slice(prefix.length)
  return /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/.test(name) ? name : undefined
}

/** `spiffe://TD/ns/NS/sa/SA` → {namespace, serviceAccount}, when the ID belongs to TRUST_DOMAIN. */
export function workloadFromSpiffe(spiffe: string | undefined, trustDomain: string): {namespace: string; serviceAccount: string} | undefined {
  const prefix = `spiffe://${trustDomain}/ns/`
  if (!spiffe?.startsWith(prefix)) return undefined
  const match = /^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)\/sa\/([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)$/.exec(spiffe.slice(prefix.length))
  return match ? {namespace: match[1], serviceAccount: match[3]} : undefined
}

/** Build the request fields that depend on the identity resources. */
export function sourceOf(spiffe: string | undefined, trustDomain: string, identities: Record<string, IdentitySummary>): SourceFields {
  const name = identityNameFromSpiffe(spiffe, trustDomain)
  const workload = name === undefined ? workloadFromSpiffe(spiffe, trustDomain) : undefined
  return {
    sourceIdentity: name,
    sourceRoles: name === undefined ? [] : (identities[name]?.roles ?? []),
    sourceSpiffe: spiffe,
    ...(workload ? {sourceNamespace: workload.namespace, sourceServiceAccount: workload.serviceAccount} : {}),
  }
}

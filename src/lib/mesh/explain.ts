// `ztctl policy explain` (and the dashboard's explain form): what each agent hosting a service would decide
// for a connection from one source, and why. The decision is the agents' own function (authorizeConnection
// in proxy/state/authz.ts) over the configuration the controller serves them, with a trace of every check.
import {isIP} from 'node:net'

import type {AgentRecord, ConfigSnapshot, IdentitySummary, OutboundTunnel, Policy} from '../config/types.js'
import {ExitCode, ZtError} from '../errors.js'
import {authorizeConnection, type AuthzDecision, type AuthzStep} from '../proxy/state/authz.js'
import {type AgentList, type ControllerApi, type ResourceList, resourcePath} from './api.js'
import {parseHostPort, parseName, parsePortNumber, parseServiceName, parseSubject} from './parse.js'

export interface ExplainQuery {
  /** `@IDENTITY`, `sa:NAMESPACE/ACCOUNT` or a `spiffe://…` ID */
  from: string
  /** the source address the hosting agent sees; default: the source agent's HBONE address */
  sourceIp?: string
  /** `tcp/NAME` or `tcp/NAME:PORT` (the target's port, as policies see it) */
  to: string
}

/** What a decision reads: the resources the controller streams to every agent. */
export type ExplainConfig = Pick<ConfigSnapshot, 'agent' | 'identity' | 'outbound' | 'policy'> & {trustDomain: string}

export interface ExplainStep {
  /** the check in words */
  text: string
  /** what the check did to the connection: decided it, or passed it on */
  verdict: 'allow' | 'deny' | 'pass'
  step: AuthzStep
}

export interface ExplainVerdict {
  /** the agent hosting the service, the one that decides */
  agent: string
  decision: AuthzDecision
  port: number
  steps: ExplainStep[]
  summary: string
}

export interface Explanation {
  notes: string[]
  service: string
  source: {address: string; identity?: string; roles: string[]; spiffe: string}
  verdicts: ExplainVerdict[]
}

const usage = (code: string, message: string, suggestion: string): ZtError => new ZtError(code, message, {exit: ExitCode.usage, suggestion})

/** `tcp/NAME[:PORT]` */
export function parseDestination(text: string): {port?: number; service: string} {
  const match = /^(.*):(\d+)$/.exec(text)
  return match ? {port: parsePortNumber(match[2]), service: parseServiceName(match[1])} : {service: parseServiceName(text)}
}

/** One concrete source: an identity, a workload's service account or a SPIFFE ID (a role names many). */
function resolveSource(config: ExplainConfig, from: string): {identity?: IdentitySummary; spiffe: string} {
  const subject = parseSubject(from)
  if (subject.startsWith('@')) {
    const name = parseName(subject.slice(1), 'identity name')
    const identity = config.identity[name]
    if (!identity) {
      throw new ZtError('ZT_ERR_NOT_FOUND', `no identity named "${name}" is in the mesh's configuration (a revoked identity is removed)`, {
        exit: ExitCode.notFound,
        suggestion: 'see them with `ztctl identity list`',
      })
    }

    return {identity, spiffe: identity.spiffe}
  }

  if (subject.startsWith('sa:')) {
    const [namespace, account] = subject.slice(3).split('/')
    return {spiffe: `spiffe://${config.trustDomain}/ns/${namespace}/sa/${account}`}
  }

  if (subject.startsWith('spiffe://')) {
    const identity = Object.values(config.identity).find((candidate) => candidate.spiffe === subject)
    return {identity, spiffe: subject}
  }

  throw usage('ZT_ERR_INVALID_SUBJECT', `"${from}" names more than one source`, 'explain one source: --from @IDENTITY, sa:NAMESPACE/ACCOUNT or spiffe://…')
}

/** The address the hosting agent would see: --source-ip, else where the source agent's HBONE listener is. */
function sourceAddress(config: ExplainConfig, sourceIp: string | undefined, identity: IdentitySummary | undefined): {address: string; assumed?: string} {
  if (sourceIp !== undefined) {
    if (!isIP(sourceIp)) throw usage('ZT_ERR_INVALID_ADDRESS', `"${sourceIp}" is not an IP address`, 'pass --source-ip as 10.0.0.5 or fd00::5')
    return {address: sourceIp}
  }

  const agent: AgentRecord | undefined = identity && config.agent[identity.name]
  const host = agent && hostOf(agent.hbone)
  if (host && isIP(host) && host !== '0.0.0.0' && host !== '::') return {address: host, assumed: `${identity!.name}'s HBONE address`}
  return {address: ''}
}

function hostOf(address: string): string | undefined {
  try {
    return parseHostPort(address).host
  } catch {
    return undefined
  }
}

function fieldText(policy: Policy, step: AuthzStep & {step: 'policy'}, port: number, address: string): string {
  switch (step.mismatch) {
    case 'from': {
      return `the source is not ${policy.from.join(' or ')}`
    }

    case 'ports': {
      return `port ${port} is not ${policy.ports.join(' or ')}`
    }

    case 'sourceCidrs': {
      return `${address || 'the (unknown) source address'} is not in ${policy.sourceCidrs.join(' or ')}`
    }

    default: {
      return ''
    }
  }
}

function describeStep(step: AuthzStep, context: {agent: string; address: string; policies: Record<string, Policy>; port: number; service: string; source: string}): ExplainStep {
  switch (step.step) {
    case 'mesh-source': {
      return step.matched
        ? {step, text: `${context.source} is an identity of this mesh`, verdict: 'pass'}
        : {step, text: `${context.source} is no identity of this mesh`, verdict: 'deny'}
    }

    case 'allow-list': {
      const list = `the allow list of ${context.service} on ${context.agent} (${step.allow.join(', ')})`
      return step.matched ? {step, text: `${context.source} is in ${list}`, verdict: 'pass'} : {step, text: `${context.source} is not in ${list}`, verdict: 'deny'}
    }

    case 'other-services': {
      return {step, text: `${step.action} "${step.policy}" applies only to ${step.services.join(', ')}: skipped`, verdict: 'pass'}
    }

    case 'policy': {
      if (step.mismatch === undefined) {
        return {step, text: `${step.action} "${step.policy}" matches`, verdict: step.action === 'DENY' ? 'deny' : 'allow'}
      }

      const policy = context.policies[step.policy]
      return {step, text: `${step.action} "${step.policy}" does not match: ${fieldText(policy, step, context.port, context.address)}`, verdict: 'pass'}
    }
  }
}

function summarize(decision: AuthzDecision, service: string): string {
  if (!decision.allowed) return decision.policy ? `DENIED by policy "${decision.policy}"` : `DENIED: ${decision.reason}`
  return decision.policy ? `ALLOWED by policy "${decision.policy}"` : `ALLOWED: no DENY matches and no ALLOW policy applies to ${service} (the default)`
}

/** Explain QUERY against CONFIG: one verdict per hosting agent and port. */
export function explain(config: ExplainConfig, query: ExplainQuery): Explanation {
  const {port, service} = parseDestination(query.to)
  const {identity, spiffe} = resolveSource(config, query.from)
  const {address, assumed} = sourceAddress(config, query.sourceIp, identity)
  const hosting = Object.values(config.outbound)
    .filter((tunnel: OutboundTunnel) => tunnel.service === service)
    .sort((a, b) => a.agent.localeCompare(b.agent))
  if (hosting.length === 0) {
    throw new ZtError('ZT_ERR_NOT_FOUND', `no agent hosts ${service}: there is no outbound tunnel for it, so nothing would decide`, {
      exit: ExitCode.notFound,
      suggestion: 'see the services with `ztctl tunnel list`, or open one with `ztctl tunnel open outbound`',
    })
  }

  const source = identity ? `@${identity.name}` : spiffe
  const verdicts: ExplainVerdict[] = []
  for (const tunnel of hosting) {
    const targetPorts = [...new Set(tunnel.targets.map((target) => target.port))].sort((a, b) => a - b)
    for (const candidate of port === undefined ? targetPorts : [port]) {
      if (!targetPorts.includes(candidate)) {
        const reason = `${candidate} is not a target port of ${service} on ${tunnel.agent} (${targetPorts.join(', ')}): the agent refuses it before any policy`
        verdicts.push({agent: tunnel.agent, decision: {allowed: false, reason}, port: candidate, steps: [], summary: `DENIED: ${reason}`})
        continue
      }

      const context = {address, agent: tunnel.agent, policies: config.policy, port: candidate, service, source}
      const steps: ExplainStep[] = []
      const facts = {destinationPort: candidate, service, sourceAddress: address, sourceSpiffe: spiffe}
      const decision = authorizeConnection(facts, config, config.trustDomain, tunnel.allow, (step) => steps.push(describeStep(step, context)))
      verdicts.push({agent: tunnel.agent, decision, port: candidate, steps, summary: summarize(decision, service)})
    }
  }

  const notes: string[] = []
  const cidrPolicies = Object.values(config.policy).filter((policy) => policy.sourceCidrs.length > 0).map((policy) => `"${policy.name}"`)
  if (cidrPolicies.length > 0 && assumed) notes.push(`source address ${address} assumed (${assumed}) for ${cidrPolicies.join(', ')}; pass --source-ip to check another`)
  if (cidrPolicies.length > 0 && !address) notes.push(`the source address is unknown, so the source CIDRs of ${cidrPolicies.join(', ')} do not match; pass --source-ip`)
  return {notes, service, source: {address, identity: identity?.name, roles: identity?.roles ?? [], spiffe}, verdicts}
}

const byKey = <T>(items: T[], key: (item: T) => string): Record<string, T> => Object.fromEntries(items.map((item) => [key(item), item]))

/** Explain QUERY with the controller's current configuration; notes agents that still decide with an older one. */
export async function explainPolicy(api: ControllerApi, query: ExplainQuery): Promise<Explanation & {version: number}> {
  const list = <K extends 'agent' | 'identity' | 'outbound' | 'policy'>(kind: K) => api.request<ResourceList<ConfigSnapshot[K][string]>>('GET', resourcePath(kind))
  const [{trustDomain}, agents, identities, outbounds, policies, status] = await Promise.all([
    api.request<{trustDomain: string}>('GET', '/v1/version'),
    list('agent'), list('identity'), list('outbound'), list('policy'),
    api.request<AgentList>('GET', '/v1/agents'),
  ])
  const config: ExplainConfig = {
    agent: byKey(agents.items, (agent) => agent.name),
    identity: byKey(identities.items, (identity) => identity.name),
    outbound: byKey(outbounds.items, (tunnel) => `${tunnel.service}@${tunnel.agent}`),
    policy: byKey(policies.items, (policy) => policy.name),
    trustDomain,
  }
  const result = explain(config, query)
  const acked = new Map(status.agents.map((agent) => [agent.name, agent.ackedVersion]))
  for (const host of new Set(result.verdicts.map((verdict) => verdict.agent))) {
    const version = acked.get(host)
    if (version === undefined) result.notes.push(`${host} has never connected: nothing decides for it until it runs`)
    else if (version < status.version) result.notes.push(`${host} has not applied configuration version ${status.version} yet (it runs ${version}): it may still decide otherwise`)
  }

  return {...result, version: status.version}
}

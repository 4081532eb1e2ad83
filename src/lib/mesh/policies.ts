// L4 authorization policies (ztunnel semantics, evaluated by the agents; see src/lib/proxy/state/authz.ts).
import {ExitCode, ZtError} from '../errors.js'
import type {AgentApp, OutboundTunnel, Policy} from '../config/types.js'
import {type ControllerApi, type ResourceList, resourcePath} from './api.js'
import {parseCidr, parseName, parsePolicyService, parsePortNumber, parseSubject} from './parse.js'
import {type ChangeOptions, type ChangeResult, commitChange, type RolloutTarget} from './rollout.js'

/** A policy reaches every agent: each one that hosts a service evaluates it. */
const EVERY_AGENT: RolloutTarget = {owners: [], watchers: 'all'}

export interface PolicyInput {
  action: string
  from?: string[]
  name: string
  ports?: string[]
  services?: string[]
  sourceCidrs?: string[]
}

export function buildPolicy(input: PolicyInput): Policy {
  const action = input.action.toUpperCase()
  if (action !== 'ALLOW' && action !== 'DENY') {
    throw new ZtError('ZT_ERR_INVALID_ACTION', `"${input.action}" is not a policy action`, {
      exit: ExitCode.usage,
      suggestion: 'use --action ALLOW or --action DENY',
    })
  }

  return {
    action,
    from: (input.from ?? []).map((subject) => parseSubject(subject)),
    name: parseName(input.name, 'policy name'),
    ports: (input.ports ?? []).map((port) => parsePortNumber(port)),
    services: (input.services ?? []).map((service) => parsePolicyService(service)),
    sourceCidrs: (input.sourceCidrs ?? []).map((cidr) => parseCidr(cidr)),
  }
}

export interface PolicyChange extends ChangeResult {
  policy: Policy
  /** names the policy refers to that the mesh does not have (yet): likely typos */
  warnings: string[]
}

/** References to identities and services that do not exist: the policy is valid but would match nothing there. */
export async function unknownReferences(api: ControllerApi, policy: Pick<Policy, 'from' | 'services'>): Promise<string[]> {
  const [identities, outbounds, apps] = await Promise.all([
    api.request<{items: {name: string}[]}>('GET', '/v1/identities'),
    api.request<ResourceList<OutboundTunnel>>('GET', resourcePath('outbound')),
    api.request<ResourceList<AgentApp>>('GET', resourcePath('app')),
  ])
  const names = new Set(identities.items.map((identity) => identity.name))
  const services = new Set([...outbounds.items.map((tunnel) => tunnel.service), ...apps.items.filter((app) => app.enabled).map((app) => `app/${app.app}`)])
  const missing = (service: string): string => (service.startsWith('app/')
    ? `no agent has its ${service.slice(4)} app on (see \`ztctl ${service.slice(4)} config --help\`)`
    : `no outbound tunnel serves ${service} (see \`ztctl tunnel list\`)`)
  return [
    ...policy.from.filter((subject) => subject.startsWith('@') && !names.has(subject.slice(1))).map((subject) => `no identity named "${subject.slice(1)}" exists (${subject} matches nothing until one does; see \`ztctl identity list\`)`),
    ...policy.services.filter((service) => !services.has(service)).map((service) => missing(service)),
  ]
}

export async function createPolicy(api: ControllerApi, input: PolicyInput, replace = false, options: ChangeOptions = {}): Promise<PolicyChange> {
  const policy = buildPolicy(input)
  if (!replace) {
    const existing = await listPolicies(api)
    if (existing.items.some((other) => other.name === policy.name)) {
      throw new ZtError('ZT_ERR_NAME_TAKEN', `a policy named "${policy.name}" already exists`, {
        exit: ExitCode.conflict,
        suggestion: `pick another name, delete it first (\`ztctl policy delete ${policy.name}\`), or pass --replace`,
      })
    }
  }

  const warnings = await unknownReferences(api, policy)
  const result = await commitChange(api, options, {body: policy, method: 'PUT', path: resourcePath('policy', policy.name)}, () => ({
    ...EVERY_AGENT, resource: {key: policy.name, kind: 'policy'},
  }))
  return {...result, policy, warnings}
}

export async function showPolicy(api: ControllerApi, name: string): Promise<{policy: Policy; version: number; warnings: string[]}> {
  const list = await listPolicies(api)
  const policy = list.items.find((item) => item.name === parseName(name, 'policy name'))
  if (!policy) throw noPolicy(name)
  return {policy, version: list.version, warnings: await unknownReferences(api, policy)}
}

function noPolicy(name: string): ZtError {
  return new ZtError('ZT_ERR_NOT_FOUND', `there is no policy named "${name}"`, {exit: ExitCode.notFound, suggestion: 'see them with `ztctl policy list`'})
}

export async function listPolicies(api: ControllerApi): Promise<ResourceList<Policy>> {
  const list = await api.request<ResourceList<Policy>>('GET', resourcePath('policy'))
  return {items: [...list.items].sort((a, b) => a.name.localeCompare(b.name)), version: list.version}
}

export async function deletePolicy(api: ControllerApi, name: string, options: ChangeOptions = {}): Promise<ChangeResult> {
  const key = parseName(name, 'policy name')
  try {
    if (options.dryRun && !(await listPolicies(api)).items.some((policy) => policy.name === key)) throw noPolicy(name)
    return await commitChange(api, options, {method: 'DELETE', path: resourcePath('policy', key)}, () => EVERY_AGENT)
  } catch (error) {
    if (ZtError.is(error) && error.code === 'ZT_ERR_NOT_FOUND') throw noPolicy(name)
    throw error
  }
}

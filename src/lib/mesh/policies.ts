// L4 authorization policies (ztunnel semantics, evaluated by the agents; see src/lib/proxy/state/authz.ts).
import {ExitCode, ZtError} from '../errors.js'
import type {Policy} from '../config/types.js'
import {type ControllerApi, type ResourceList, resourcePath} from './api.js'
import {parseCidr, parseName, parsePolicyService, parsePortNumber, parseSubject} from './parse.js'

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

export async function createPolicy(api: ControllerApi, input: PolicyInput, replace = false): Promise<{policy: Policy; version: number}> {
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

  const {version} = await api.request<{version: number}>('PUT', resourcePath('policy', policy.name), policy)
  return {policy, version}
}

export async function listPolicies(api: ControllerApi): Promise<ResourceList<Policy>> {
  const list = await api.request<ResourceList<Policy>>('GET', resourcePath('policy'))
  return {items: [...list.items].sort((a, b) => a.name.localeCompare(b.name)), version: list.version}
}

export async function deletePolicy(api: ControllerApi, name: string): Promise<{version: number}> {
  try {
    return await api.request<{version: number}>('DELETE', resourcePath('policy', parseName(name, 'policy name')))
  } catch (error) {
    if (ZtError.is(error) && error.code === 'ZT_ERR_NOT_FOUND') {
      throw new ZtError('ZT_ERR_NOT_FOUND', `there is no policy named "${name}"`, {
        exit: ExitCode.notFound,
        suggestion: 'see them with `ztctl policy list`',
      })
    }

    throw error
  }
}

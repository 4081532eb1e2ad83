// Tunnels in ZTM's words: an outbound is where a service leaves the mesh (an agent forwards to targets),
// an inbound is where it enters (an agent listens on a local port).
import {ExitCode, ZtError} from '../errors.js'
import type {InboundTunnel, OutboundTunnel, Policy, ResourceKind, Target} from '../config/types.js'
import {type AgentList, type AgentStatus, type ControllerApi, type ResourceList, resourcePath} from './api.js'
import {parseIntercept, parseListen, parseName, parseServiceName, parseSubject, parseTarget} from './parse.js'
import {type ChangeOptions, type ChangeResult, commitChange} from './rollout.js'

export type Direction = 'inbound' | 'outbound'

export interface OpenOutboundInput {
  agent: string
  allow?: string[]
  service: string
  targets: string[]
}

export interface OpenInboundInput {
  agent: string
  /** udp/ services: seconds a flow may stay silent before it ends */
  idleTimeout?: number
  /** `HOST|IP|CIDR[:PORT]` a tproxy sidecar captures for the service */
  intercept?: string[]
  /** optional when INTERCEPT is given (then an ephemeral loopback port) */
  listen?: string
  service: string
}

/** The listen address of an intercept-only inbound tunnel: any free loopback port, never a clash. */
export const INTERCEPT_ONLY_LISTEN = '127.0.0.1:0'

export interface TunnelChange<T> extends ChangeResult {
  tunnel: T
}

/** Agents with an inbound tunnel to SERVICE: they route to its outbound ends, so they must learn of a change. */
async function inboundAgents(api: ControllerApi, service: string): Promise<string[]> {
  const inbounds = await api.request<ResourceList<InboundTunnel>>('GET', resourcePath('inbound'))
  return inbounds.items.filter((tunnel) => tunnel.service === service).map((tunnel) => tunnel.agent)
}

export async function assertIdentityExists(api: ControllerApi, agent: string): Promise<void> {
  try {
    await api.request('GET', `/v1/identities/${encodeURIComponent(agent)}`)
  } catch (error) {
    if (ZtError.is(error) && error.code === 'ZT_ERR_NOT_FOUND') {
      throw new ZtError('ZT_ERR_UNKNOWN_AGENT', `no identity named "${agent}" exists, so no agent can run as it`, {
        exit: ExitCode.notFound,
        suggestion: `create and enroll it first: \`ztctl identity create ${agent} -a agent\`, then \`ztctl enroll ${agent}.jwt\``,
      })
    }

    throw error
  }
}

export async function openOutbound(api: ControllerApi, input: OpenOutboundInput, options: ChangeOptions = {}): Promise<TunnelChange<OutboundTunnel>> {
  const tunnel: OutboundTunnel = {
    agent: parseName(input.agent, 'agent name'),
    allow: (input.allow ?? []).map((subject) => parseSubject(subject)),
    service: parseServiceName(input.service),
    targets: input.targets.map((target) => parseTarget(target)),
  }
  if (tunnel.targets.length === 0) {
    throw new ZtError('ZT_ERR_NO_TARGET', 'an outbound tunnel needs at least one target', {
      exit: ExitCode.usage,
      suggestion: 'add --target HOST:PORT',
    })
  }

  await assertIdentityExists(api, tunnel.agent)
  const key = `${tunnel.service}@${tunnel.agent}`
  const result = await commitChange(api, options, {body: tunnel, method: 'PUT', path: resourcePath('outbound', key)}, async () => ({
    owners: [tunnel.agent], resource: {key, kind: 'outbound'}, watchers: await inboundAgents(api, tunnel.service),
  }))
  return {...result, tunnel}
}

export async function openInbound(api: ControllerApi, input: OpenInboundInput, options: ChangeOptions = {}): Promise<TunnelChange<InboundTunnel>> {
  const intercept = (input.intercept ?? []).map((text) => parseIntercept(text))
  if (input.listen === undefined && intercept.length === 0) {
    throw new ZtError('ZT_ERR_NO_LISTEN', 'an inbound tunnel needs --listen, --intercept, or both', {
      exit: ExitCode.usage,
      suggestion: 'add --listen [IP:]PORT for a local port, or --intercept HOST|IP|CIDR[:PORT] for a tproxy sidecar',
    })
  }

  const tunnel: InboundTunnel = {
    agent: parseName(input.agent, 'agent name'),
    ...(intercept.length > 0 ? {intercept: [...new Set(intercept)]} : {}),
    listen: input.listen === undefined ? INTERCEPT_ONLY_LISTEN : parseListen(input.listen),
    service: parseServiceName(input.service),
  }
  if (input.idleTimeout !== undefined) {
    if (!tunnel.service.startsWith('udp/')) {
      throw new ZtError('ZT_ERR_USAGE', '--idle-timeout is for udp/ tunnels (a TCP connection ends when its peers close it)', {exit: ExitCode.usage, suggestion: `drop --idle-timeout, or open udp/${tunnel.service.slice(4)}`})
    }

    if (!Number.isInteger(input.idleTimeout) || input.idleTimeout < 1 || input.idleTimeout > 86_400) {
      throw new ZtError('ZT_ERR_USAGE', `--idle-timeout must be 1 s to 24 h, got ${input.idleTimeout} s`, {exit: ExitCode.usage, suggestion: 'e.g. --idle-timeout 30s'})
    }

    tunnel.idleTimeout = input.idleTimeout
  }

  if (tunnel.service.startsWith('udp/') && intercept.length > 0) {
    throw new ZtError('ZT_ERR_USAGE', '--intercept captures TCP connections; udp/ tunnels listen on --listen only', {exit: ExitCode.usage, suggestion: 'drop --intercept for this service'})
  }
  await assertIdentityExists(api, tunnel.agent)
  const inbounds = await api.request<ResourceList<InboundTunnel>>('GET', resourcePath('inbound'))
  const clash = inbounds.items.find(
    (other) => other.agent === tunnel.agent && other.listen === tunnel.listen && other.service !== tunnel.service && tunnel.listen !== INTERCEPT_ONLY_LISTEN,
  )
  if (clash) {
    throw new ZtError('ZT_ERR_LISTEN_TAKEN', `agent ${tunnel.agent} already listens on ${tunnel.listen} for ${clash.service}`, {
      exit: ExitCode.conflict,
      suggestion: `pick another --listen port, or close it: \`ztctl tunnel close inbound ${clash.service} --agent ${tunnel.agent}\``,
    })
  }

  const key = `${tunnel.service}@${tunnel.agent}`
  const result = await commitChange(api, options, {body: tunnel, method: 'PUT', path: resourcePath('inbound', key)}, () => ({
    owners: [tunnel.agent], resource: {key, kind: 'inbound'}, watchers: [],
  }))
  return {...result, tunnel}
}

export async function closeTunnel(api: ControllerApi, direction: Direction, service: string, agent: string, options: ChangeOptions = {}): Promise<ChangeResult> {
  const name = parseServiceName(service)
  const owner = parseName(agent, 'agent name')
  const key = `${name}@${owner}`
  try {
    if (options.dryRun) {
      const list = await api.request<ResourceList<InboundTunnel | OutboundTunnel>>('GET', resourcePath(direction))
      if (!list.items.some((tunnel) => tunnel.service === name && tunnel.agent === owner)) throw new ZtError('ZT_ERR_NOT_FOUND', `no ${direction} ${key}`)
    }

    return await commitChange(api, options, {method: 'DELETE', path: resourcePath(direction, key)}, async () => ({
      owners: [owner], watchers: direction === 'outbound' ? await inboundAgents(api, name) : [],
    }))
  } catch (error) {
    if (ZtError.is(error) && error.code === 'ZT_ERR_NOT_FOUND') {
      throw new ZtError('ZT_ERR_NOT_FOUND', `there is no ${direction} tunnel ${service} on agent ${agent}`, {
        exit: ExitCode.notFound,
        suggestion: 'see the open ones with `ztctl tunnel list`',
      })
    }

    throw error
  }
}

export interface TunnelEnd {
  agent: string
  online: boolean
  /** the agent's own report: applied, error (with reason), pending (not acknowledged yet) or offline */
  reason?: string
  state: 'applied' | 'error' | 'offline' | 'pending'
}

/** How AGENT stands with the tunnel KIND KEY, from its last ack. */
export function tunnelState(agent: AgentStatus | undefined, kind: ResourceKind, key: string): Pick<TunnelEnd, 'reason' | 'state'> {
  const status = agent?.resources?.find((item) => item.kind === kind && item.key === key)
  if (status?.state === 'error') return {reason: status.reason, state: 'error'}
  if (!agent?.online) return {state: 'offline'}
  return status ? {state: 'applied'} : {state: 'pending'}
}

export interface TunnelSummary {
  inbound: (TunnelEnd & {intercept?: string[]; listen: string})[]
  outbound: (TunnelEnd & {allow: string[]; targets: Target[]})[]
  service: string
}

/** Every service with the agents where it enters (inbound) and leaves (outbound) the mesh. */
export async function listTunnels(api: ControllerApi): Promise<{tunnels: TunnelSummary[]; version: number}> {
  const [outbounds, inbounds, agents] = await Promise.all([
    api.request<ResourceList<OutboundTunnel>>('GET', resourcePath('outbound')),
    api.request<ResourceList<InboundTunnel>>('GET', resourcePath('inbound')),
    api.request<AgentList>('GET', '/v1/agents'),
  ])
  const byName = new Map<string, AgentStatus>(agents.agents.map((agent) => [agent.name, agent]))
  const end = (kind: 'inbound' | 'outbound', tunnel: InboundTunnel | OutboundTunnel): TunnelEnd => ({
    agent: tunnel.agent, online: byName.get(tunnel.agent)?.online ?? false, ...tunnelState(byName.get(tunnel.agent), kind, `${tunnel.service}@${tunnel.agent}`),
  })
  const byService = new Map<string, TunnelSummary>()
  const summary = (service: string): TunnelSummary => {
    let entry = byService.get(service)
    if (!entry) {
      entry = {inbound: [], outbound: [], service}
      byService.set(service, entry)
    }

    return entry
  }

  for (const tunnel of outbounds.items) {
    summary(tunnel.service).outbound.push({...end('outbound', tunnel), allow: tunnel.allow, targets: tunnel.targets})
  }

  for (const tunnel of inbounds.items) {
    summary(tunnel.service).inbound.push({...end('inbound', tunnel), intercept: tunnel.intercept, listen: tunnel.listen})
  }

  const tunnels = [...byService.values()].sort((a, b) => a.service.localeCompare(b.service))
  return {tunnels, version: Math.max(outbounds.version, inbounds.version, agents.version)}
}

export function formatTarget(target: Target): string {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host
  return `${host}:${target.port}${target.weight && target.weight !== 1 ? `@${target.weight}` : ''}`
}

export interface TunnelDescription extends TunnelSummary {
  /** the policies that apply to the service (those naming it, and those naming no service) */
  policies: Policy[]
  version: number
}

/** `tunnel describe`: one service's ends, each agent's state, and the policies that decide who may use it. */
export async function describeTunnel(api: ControllerApi, service: string): Promise<TunnelDescription> {
  const name = parseServiceName(service)
  const [{tunnels, version}, policies] = await Promise.all([listTunnels(api), api.request<ResourceList<Policy>>('GET', resourcePath('policy'))])
  const tunnel = tunnels.find((item) => item.service === name)
  if (!tunnel) {
    throw new ZtError('ZT_ERR_NOT_FOUND', `no tunnel serves ${name}`, {exit: ExitCode.notFound, suggestion: 'see the open ones with `ztctl tunnel list`'})
  }

  const applying = policies.items.filter((policy) => policy.services.length === 0 || policy.services.includes(name)).sort((a, b) => a.name.localeCompare(b.name))
  return {...tunnel, policies: applying, version}
}

// Tunnels in ZTM's words: an outbound is where a service leaves the mesh (an agent forwards to targets),
// an inbound is where it enters (an agent listens on a local port).
import {ExitCode, ZtError} from '../errors.js'
import type {InboundTunnel, OutboundTunnel, Target} from '../config/types.js'
import {type AgentList, type AgentStatus, type ControllerApi, type ResourceList, resourcePath} from './api.js'
import {parseIntercept, parseListen, parseName, parseServiceName, parseSubject, parseTarget} from './parse.js'

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

export interface TunnelChange<T> {
  tunnel: T
  version: number
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

export async function openOutbound(api: ControllerApi, input: OpenOutboundInput): Promise<TunnelChange<OutboundTunnel>> {
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
  const {version} = await api.request<{version: number}>('PUT', resourcePath('outbound', `${tunnel.service}@${tunnel.agent}`), tunnel)
  return {tunnel, version}
}

export async function openInbound(api: ControllerApi, input: OpenInboundInput): Promise<TunnelChange<InboundTunnel>> {
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

  const {version} = await api.request<{version: number}>('PUT', resourcePath('inbound', `${tunnel.service}@${tunnel.agent}`), tunnel)
  return {tunnel, version}
}

export async function closeTunnel(
  api: ControllerApi,
  direction: Direction,
  service: string,
  agent: string,
): Promise<{version: number}> {
  const key = `${parseServiceName(service)}@${parseName(agent, 'agent name')}`
  try {
    return await api.request<{version: number}>('DELETE', resourcePath(direction, key))
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
  const online = new Map<string, boolean>(agents.agents.map((agent: AgentStatus) => [agent.name, agent.online]))
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
    summary(tunnel.service).outbound.push({
      agent: tunnel.agent,
      allow: tunnel.allow,
      online: online.get(tunnel.agent) ?? false,
      targets: tunnel.targets,
    })
  }

  for (const tunnel of inbounds.items) {
    summary(tunnel.service).inbound.push({
      agent: tunnel.agent,
      intercept: tunnel.intercept,
      listen: tunnel.listen,
      online: online.get(tunnel.agent) ?? false,
    })
  }

  const tunnels = [...byService.values()].sort((a, b) => a.service.localeCompare(b.service))
  return {tunnels, version: Math.max(outbounds.version, inbounds.version, agents.version)}
}

export function formatTarget(target: Target): string {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host
  return `${host}:${target.port}${target.weight && target.weight !== 1 ? `@${target.weight}` : ''}`
}

// The agent's view of the mesh, rebuilt from each configuration snapshot: which targets this agent
// serves, where each service's endpoints are, which certificates are revoked, and the authorization
// decision for a connection. Immutable once built, so a connection handler reads one consistent view.
import {type AgentApp, APP_NAMES, type AppName, type ConfigSnapshot, emptySnapshot, type InboundTunnel, type OutboundTunnel, type ProxyExit, type ProxyListener, type ProxyUser, type PublishedFile, RESOURCE_KINDS, type ResourceKind, type ResourceStatus} from '../../config/types.js'
import {ZtError} from '../../errors.js'
import {formatHostPort, type HostPort, isValidCidr, parseHostPort, sameHostPort} from '../address.js'
import {appTunnels, enabledApps, isAppService, isReservedAppHost} from './apps.js'
import {type AuthzDecision, authorizeConnection, type ConnectionFacts} from './authz.js'
import {bestExits, exitScore} from './exits.js'

export interface Endpoint {
  /** the hosting agent */
  agent: string
  /** the hosting agent's HBONE address */
  hbone: string
  /** the hosting agent's SPIFFE ID, pinned when dialling */
  spiffe: string
  /** `host:port` sent as the CONNECT :authority */
  target: string
  weight: number
}

export interface SelfInfo {
  name: string
  trustDomain: string
}

export class MeshState {
  private readonly apps: Map<AppName, AgentApp>
  private readonly endpointCache = new Map<string, readonly Endpoint[]>()
  private readonly hosted: OutboundTunnel[]
  private readonly revoked: Set<string>

  constructor(
    readonly snapshot: ConfigSnapshot,
    readonly version: number,
    readonly self: SelfInfo,
  ) {
    this.apps = enabledApps(snapshot, self.name)
    // An enabled app is a service this agent hosts (state/apps.ts): admitted, authorized and accounted alike.
    this.hosted = [...Object.values(snapshot.outbound).filter((tunnel) => tunnel.agent === self.name), ...appTunnels(this.apps)]
    this.revoked = new Set(Object.values(snapshot.revocation).map((revocation) => revocation.serial.toUpperCase()))
  }

  static empty(self: SelfInfo): MeshState {
    return new MeshState(emptySnapshot(), 0, self)
  }

  /** The outbound tunnel of this agent that serves TARGET (preferring SERVICE when several do): never an open relay. */
  hostedTunnel(target: HostPort, service?: string): OutboundTunnel | undefined {
    const serving = this.hosted.filter((tunnel) => tunnel.targets.some((candidate) => sameHostPort(candidate, target)))
    return serving.find((tunnel) => tunnel.service === service) ?? serving[0]
  }

  hostedTunnels(): OutboundTunnel[] {
    return this.hosted
  }

  /** APP's configuration when it is enabled on this agent. */
  app(name: AppName): AgentApp | undefined {
    return this.apps.get(name)
  }

  /** The files this agent's file app serves, by name. */
  publishedFiles(): PublishedFile[] {
    return Object.values(this.snapshot.file ?? {}).filter((file) => file.agent === this.self.name)
  }

  inboundTunnels(): InboundTunnel[] {
    return Object.values(this.snapshot.inbound).filter((tunnel) => tunnel.agent === this.self.name)
  }

  /** This agent's proxy listener (`ztctl proxy open`), if it has one. */
  proxyListener(): ProxyListener | undefined {
    return this.snapshot.proxy?.[this.self.name]
  }

  /** This agent's exit configuration when it serves HOST (never an open relay: only its own targets). */
  hostedExit(host: string): ProxyExit | undefined {
    const exit = this.snapshot.exit?.[this.self.name]
    return exit && exitScore(exit, host) > 0 ? exit : undefined
  }

  /** The exits that serve HOST most specifically, as endpoints for TARGET (`host:port`). */
  exitEndpoints(host: string, target: string): Endpoint[] {
    return bestExits(Object.values(this.snapshot.exit ?? {}), host).flatMap((exit) => {
      const agent = this.snapshot.agent[exit.agent]
      return agent ? [{agent: agent.name, hbone: agent.hbone, spiffe: agent.spiffe, target, weight: 1}] : []
    })
  }

  /**
   * The (hosting agent, target) pairs of a service; agents with no known HBONE address are skipped.
   * A state never changes, so the list is computed once per service (every connection asks); callers
   * must not modify it.
   */
  endpoints(service: string): readonly Endpoint[] {
    let endpoints = this.endpointCache.get(service)
    if (!endpoints) {
      endpoints = this.computeEndpoints(service)
      this.endpointCache.set(service, endpoints)
    }

    return endpoints
  }

  private computeEndpoints(service: string): Endpoint[] {
    const endpoints: Endpoint[] = []
    for (const tunnel of Object.values(this.snapshot.outbound)) {
      if (tunnel.service !== service) continue
      const agent = this.snapshot.agent[tunnel.agent]
      if (!agent) continue
      for (const target of tunnel.targets) {
        endpoints.push({agent: agent.name, hbone: agent.hbone, spiffe: agent.spiffe, target: formatHostPort(target), weight: target.weight ?? 1})
      }
    }

    return endpoints
  }

  isRevoked = (serial: string | undefined): boolean => serial !== undefined && this.revoked.has(serial.toUpperCase())

  /** Authorize a connection to a service this agent hosts. */
  authorize(request: ConnectionFacts, tunnel?: {allow: string[]; service?: string}): AuthzDecision {
    // An app's empty allow list admits nobody (a tunnel's admits any mesh identity).
    if (tunnel?.service && isAppService(tunnel.service) && tunnel.allow.length === 0) return {allowList: true, allowed: false, reason: `nobody is allowed to use ${tunnel.service} on ${this.self.name} (its allow list is empty)`}
    return authorizeConnection(request, this.snapshot, this.self.trustDomain, tunnel?.allow ?? [])
  }

  /**
   * A hub's decision for a relay from a source to AGENT (the inner stream is opaque to it): allowed when
   * some service AGENT hosts (an outbound tunnel, or its proxy exit) would allow the source on some port.
   * The destination agent then decides each connection exactly; this is the same policy, coarser.
   */
  reach(request: {agent: string; sourceAddress: string; sourceSpiffe?: string}): AuthzDecision {
    // AGENT's enabled apps are services it hosts too.
    const offers: {allow: string[]; ports?: number[]; service: string}[] = [...Object.values(this.snapshot.outbound), ...appTunnels(enabledApps(this.snapshot, request.agent))]
      .filter((tunnel) => tunnel.agent === request.agent)
      .map((tunnel) => ({allow: tunnel.allow, ports: [...new Set(tunnel.targets.map((target) => target.port))], service: tunnel.service}))
    const exit = this.snapshot.exit?.[request.agent]
    if (exit) offers.push({allow: exit.allow, service: PROXY_SERVICE})
    if (offers.length === 0) return {allowed: false, reason: `agent "${request.agent}" hosts no service and is no proxy exit`}
    // Any port (an exit's): the ports policies name, and one they do not, decide alike for every other.
    const namedPorts = [...new Set(Object.values(this.snapshot.policy).flatMap((policy) => policy.ports))]
    const anyPort = [...namedPorts, Array.from({length: namedPorts.length + 1}, (_, index) => 65_535 - index).find((port) => !namedPorts.includes(port))!]
    let last: AuthzDecision = {allowed: false, reason: 'no service allows it'}
    for (const offer of offers) {
      for (const destinationPort of offer.ports ?? anyPort) {
        last = this.authorize({destinationPort, service: offer.service, sourceAddress: request.sourceAddress, sourceSpiffe: request.sourceSpiffe}, offer)
        if (last.allowed) return last
      }
    }

    return {allowed: false, policy: last.allowed ? undefined : last.policy, reason: `no service of agent "${request.agent}" would take this source (last check: ${last.allowed ? '' : last.reason})`}
  }
}

/** The service name policies use for proxy exits (`--service proxy`). */
export const PROXY_SERVICE = 'proxy'

// ---- validation: configuration arrives from a file or the network; check its shape before use ----

type Check = (value: Record<string, unknown>) => string | undefined

const isString = (value: unknown): value is string => typeof value === 'string'
const isStringArray = (value: unknown): value is string[] => Array.isArray(value) && value.every(isString)
const isPort = (value: unknown): value is number => Number.isInteger(value) && (value as number) > 0 && (value as number) <= 65_535
const isWorkloadService = (value: unknown): boolean => {
  const service = value as {name?: unknown; ports?: unknown; vips?: unknown} | null
  return typeof service === 'object' && service !== null && isString(service.name) && isStringArray(service.vips)
    && Array.isArray(service.ports) && service.ports.every((entry: {port?: unknown; targetPort?: unknown} | null) => entry !== null && isPort(entry.port) && isPort(entry.targetPort))
}

function checkTarget(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return 'a target is not an object'
  const {host, port, weight} = value as Record<string, unknown>
  if (!isString(host) || !parseHostPort(`${host.includes(':') ? `[${host}]` : host}:1`)) return `bad target host ${JSON.stringify(host)}`
  if (isReservedAppHost(host)) return `target host ${host} is reserved for the agent's apps`
  if (!isPort(port)) return `bad target port ${JSON.stringify(port)}`
  if (weight !== undefined && !(typeof weight === 'number' && weight > 0 && Number.isFinite(weight))) return `bad target weight ${JSON.stringify(weight)}`
  return undefined
}

const isOptional = (value: unknown, check: (value: unknown) => boolean): boolean => value === undefined || check(value)

const CHECKS: Record<ResourceKind, Check> = {
  // hbone '': an agent that accepts no connection (reached through hubs)
  agent: (value) => (isString(value.name) && isString(value.spiffe) && (value.hbone === '' || parseHostPort(value.hbone)) ? undefined : 'needs name, spiffe and hbone host:port (or "")'),
  app(value) {
    if (!isString(value.agent) || !(APP_NAMES as readonly unknown[]).includes(value.app) || typeof value.enabled !== 'boolean' || !isStringArray(value.allow)) {
      return `needs agent, app (${APP_NAMES.join(', ')}), enabled and allow[]`
    }

    const ok = isOptional(value.shell, isStringArray) && isOptional(value.commands, isStringArray) && isOptional(value.scriptDir, isString)
      && isOptional(value.anyCommand, (flag) => typeof flag === 'boolean')
    return ok ? undefined : 'shell[] and commands[] must be lists of strings, scriptDir a string, anyCommand a boolean'
  },
  exit: (value) => (isString(value.agent) && isStringArray(value.allow) && isStringArray(value.targets) && isStringArray(value.exclusions) ? undefined : 'needs agent, allow[], targets[] and exclusions[]'),
  file: (value) => (isString(value.agent) && isString(value.name) && isString(value.path) && value.path.startsWith('/') ? undefined : 'needs agent, name and an absolute path'),
  identity: (value) => (isString(value.name) && isString(value.spiffe) && isStringArray(value.roles) ? undefined : 'needs name, spiffe and roles[]'),
  inbound(value) {
    if (!isString(value.agent) || !isString(value.service) || !parseHostPort(value.listen, '127.0.0.1')) return 'needs agent, service and listen ip:port'
    return value.idleTimeout === undefined || (Number.isInteger(value.idleTimeout) && (value.idleTimeout as number) > 0) ? undefined : 'idleTimeout must be a number of seconds'
  },
  proxy(value) {
    if (!isString(value.agent) || !parseHostPort(value.listen, '127.0.0.1') || !Array.isArray(value.users)) return 'needs agent, listen ip:port and users[]'
    return value.users.every((user) => typeof user === 'object' && user !== null && isString((user as ProxyUser).name) && isString((user as ProxyUser).passwordHash))
      ? undefined
      : 'each user needs name and passwordHash'
  },
  outbound(value) {
    if (!isString(value.agent) || !isString(value.service) || !isStringArray(value.allow) || !Array.isArray(value.targets)) {
      return 'needs agent, service, allow[] and targets[]'
    }

    return value.targets.map((target) => checkTarget(target)).find(Boolean)
  },
  policy(value) {
    if (value.action !== 'ALLOW' && value.action !== 'DENY') return 'action must be ALLOW or DENY'
    if (!isString(value.name) || !isStringArray(value.from) || !isStringArray(value.services) || !isStringArray(value.sourceCidrs)) {
      return 'needs name, from[], services[] and sourceCidrs[]'
    }

    if (!Array.isArray(value.ports) || !value.ports.every((port) => isPort(port))) return 'ports must be port numbers'
    const badCidr = value.sourceCidrs.find((cidr) => !isValidCidr(cidr))
    return badCidr === undefined ? undefined : `bad CIDR ${JSON.stringify(badCidr)}`
  },
  revocation: (value) => (isString(value.serial) && isString(value.spiffe) ? undefined : 'needs serial and spiffe'),
  workload: (value) =>
    isString(value.uid) && isString(value.namespace) && isString(value.name) && isString(value.serviceAccount) && isString(value.node) && isStringArray(value.ips)
    && (value.services === undefined || (Array.isArray(value.services) && value.services.every(isWorkloadService)))
      ? undefined
      : 'needs uid, namespace, name, serviceAccount, node, ips[] and, if services, [{name, vips[], ports[{port, targetPort}]}]',
}

/**
 * Check a snapshot resource by resource: the valid ones, and a status for each one dropped (missing kinds
 * become empty). Throws ZT_ERR_CONFIG only when the whole is not a snapshot.
 */
export function checkSnapshot(value: unknown): {invalid: ResourceStatus[]; snapshot: ConfigSnapshot} {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ZtError('ZT_ERR_CONFIG', 'the configuration is not a JSON object with one map per resource kind')
  }

  const snapshot = emptySnapshot()
  const invalid: ResourceStatus[] = []
  for (const kind of RESOURCE_KINDS) {
    const table = (value as Record<string, unknown>)[kind]
    if (table === undefined) continue
    if (typeof table !== 'object' || table === null || Array.isArray(table)) {
      throw new ZtError('ZT_ERR_CONFIG', `the configuration's "${kind}" is not a map of key → resource`)
    }

    for (const [key, resource] of Object.entries(table)) {
      const problem = typeof resource === 'object' && resource !== null ? CHECKS[kind](resource as Record<string, unknown>) : 'not an object'
      if (problem) invalid.push({code: 'ZT_ERR_CONFIG', key, kind, reason: `invalid ${kind}: ${problem}`, state: 'error'})
      else (snapshot[kind] as Record<string, unknown>)[key] = resource
    }
  }

  return {invalid, snapshot}
}

/** Check a snapshot's shape, all or nothing (a static file): throws ZT_ERR_CONFIG naming the first bad entry. */
export function validateSnapshot(value: unknown): ConfigSnapshot {
  const {invalid, snapshot} = checkSnapshot(value)
  const [first] = invalid
  if (first) throw new ZtError('ZT_ERR_CONFIG', `invalid ${first.kind} "${first.key}": ${first.reason?.replace(/^invalid \w+: /, '')}`)
  return snapshot
}

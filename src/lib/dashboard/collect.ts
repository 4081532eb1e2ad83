// One round of the dashboard: the controller's view (agents and their sync, identities, tunnels, policies)
// and, for every agent it can reach, its own (connection table, certificate, counters), in one snapshot.
import type {InboundTunnel, OutboundTunnel, Policy} from '../config/types.js'
import type {IdentityRecord} from '../controller/store/store.js'
import type {Home} from '../home/home.js'
import {type ControllerApi, type ResourceList, resourcePath} from '../mesh/api.js'
import {proxyStatus} from '../mesh/status.js'
import {type AgentReading, discoverAgents, readAgent} from './agents.js'
import {buildGraph, EdgeRates} from './graph.js'
import type {AgentView, ConnectionView, DashboardSnapshot, IdentityView} from './model.js'

const MAX_CONNECTIONS_PER_AGENT = 1000

export interface CollectorOptions {
  /** name → admin address of agents beyond the local ready files */
  agentAdmins?: Record<string, string>
  api: ControllerApi
  context: {controller: string; name: string}
  home: Home
  /** the identity the dashboard acts as, and its certificate's expiry */
  self: {certNotAfter?: string; name: string}
}

const certificateExpiry = (reading: AgentReading | undefined): string | undefined =>
  reading?.dump?.certificates[0]?.certChain[0]?.expirationTime

export class MeshCollector {
  private readonly rates = new EdgeRates()

  constructor(private readonly options: CollectorOptions) {}

  async collect(): Promise<DashboardSnapshot> {
    const {api} = this.options
    const list = <T>(kind: string) => api.request<ResourceList<T>>('GET', resourcePath(kind))
    const [status, identities, inbound, outbound, policies, admins] = await Promise.all([
      proxyStatus(api),
      api.request<{items: IdentityRecord[]}>('GET', '/v1/identities'),
      list<InboundTunnel>('inbound'), list<OutboundTunnel>('outbound'), list<Policy>('policy'),
      discoverAgents(this.options.home, this.options.agentAdmins),
    ])
    const readings = new Map(await Promise.all([...admins].map(async ([name, admin]) => [name, await readAgent(name, admin)] as const)))
    const problems = [...readings.values()].flatMap((reading) => (reading.problem ? [reading.problem] : []))
    const graph = buildGraph({
      agents: status.agents, inbound: inbound.items, outbound: outbound.items, readings,
      spiffe: new Map(identities.items.map((identity) => [identity.name, identity.spiffe])),
    })
    this.rates.apply(graph.edges)

    const agents: AgentView[] = status.agents.map((agent) => {
      const reading = readings.get(agent.name)
      return {
        ...agent,
        admin: reading?.admin,
        adminState: reading === undefined ? 'unknown' : reading.dump ? 'reachable' : 'unreachable',
        certNotAfter: certificateExpiry(reading),
        connections: reading?.dump?.connections.length,
        dataPath: reading?.dump?.config.dataPath,
        spiffe: identities.items.find((identity) => identity.name === agent.name)?.spiffe,
      }
    })
    const online = new Map(status.agents.map((agent) => [agent.name, agent.online]))
    const identityViews: IdentityView[] = identities.items
      .map((identity) => ({
        admin: identity.admin,
        certNotAfter: identity.name === this.options.self.name ? this.options.self.certNotAfter : certificateExpiry(readings.get(identity.name)),
        createdAt: identity.createdAt,
        enrolledAt: identity.enrolledAt,
        name: identity.name,
        online: online.get(identity.name),
        roles: identity.roles,
        self: identity.name === this.options.self.name,
        spiffe: identity.spiffe,
        status: identity.status,
      }))
      .sort((a, b) => a.name.localeCompare(b.name))
    return {
      agents,
      at: new Date().toISOString(),
      connections: connectionViews(readings, problems),
      context: this.options.context,
      graph,
      identities: identityViews,
      policies: [...policies.items].sort((a, b) => a.name.localeCompare(b.name)),
      problems,
      services: [...new Set([...inbound.items, ...outbound.items].map((tunnel) => tunnel.service))].sort(),
      version: status.version,
    }
  }
}

function connectionViews(readings: Map<string, AgentReading>, problems: string[]): ConnectionView[] {
  const rows: ConnectionView[] = []
  for (const [agent, reading] of readings) {
    const connections = reading.dump?.connections ?? []
    if (connections.length > MAX_CONNECTIONS_PER_AGENT) problems.push(`${agent} has ${connections.length} connections; the first ${MAX_CONNECTIONS_PER_AGENT} are shown`)
    for (const connection of connections.slice(0, MAX_CONNECTIONS_PER_AGENT)) {
      rows.push({
        agent,
        destinationAddress: connection.destinationAddress,
        destinationSpiffe: connection.destinationSpiffe,
        direction: connection.direction,
        id: `${agent}/${connection.id}`,
        service: connection.service,
        sourceAddress: connection.sourceAddress,
        sourceSpiffe: connection.sourceSpiffe,
        startedAt: connection.startedAt,
        target: connection.hboneTarget,
      })
    }
  }

  return rows.sort((a, b) => b.startedAt.localeCompare(a.startedAt))
}

// The mesh as a graph: agents, where services enter (inbound listeners) and leave (targets), and one edge
// per (source, hosting agent, service) carrying traffic, configured or observed. Edge figures come from the
// agents' own counters (Istio's istio_tcp_* with reporter="destination", the hosting agent's view) and
// connection tables; rates are differences between two rounds.
import type {InboundTunnel, OutboundTunnel} from '../config/types.js'
import type {AgentReading} from './agents.js'
import {type EdgeStats, type GraphEdge, type GraphNode, REFUSAL_WINDOW_MS} from './model.js'
import type {Sample} from './prom-text.js'

/** Response flags of a refusal by policy, revocation or identity (not a dial error). */
const REFUSAL_FLAGS = new Set(['CERT_REVOKED', 'DENY', 'IDENTITY_ERROR'])

export interface GraphInput {
  agents: {name: string; online: boolean; status: string}[]
  inbound: InboundTunnel[]
  outbound: OutboundTunnel[]
  readings: Map<string, AgentReading>
  /** identity name → SPIFFE ID */
  spiffe: Map<string, string>
}

type Labels = Record<string, string>

function counters(samples: Sample[], match: (labels: Labels) => boolean): Omit<EdgeStats, 'active' | 'bytesPerSecond' | 'refusedRecently' | 'reporter'> {
  const totals = {bytes: 0, errors: 0, refused: 0, total: 0}
  for (const {labels, name, value} of samples) {
    if (!match(labels)) continue
    if (name === 'istio_tcp_connections_opened_total') totals.total += value
    else if (name === 'istio_tcp_received_bytes_total' || name === 'istio_tcp_sent_bytes_total') totals.bytes += value
    else if (name === 'istio_tcp_connections_failed_total') {
      if (REFUSAL_FLAGS.has(labels.response_flags)) totals.refused += value
      else totals.errors += value
    }
  }

  return totals
}

const agentId = (name: string): string => `agent:${name}`
export const meshEdgeId = (service: string, source: string, host: string): string => `mesh:${service}:${source}>${host}`

/** The hosting agent's figures for SOURCE → HOST; the source's own when the host is out of reach. */
function meshStats(input: GraphInput, service: string, source: string, host: string): EdgeStats | undefined {
  const hosting = input.readings.get(host)
  if (hosting?.dump) {
    const spiffe = input.spiffe.get(source)
    const figures = counters(hosting.samples, (l) => l.reporter === 'destination' && l.destination_service === service && l.source_workload === source)
    const active = hosting.dump.connections.filter((c) => c.direction === 'inbound' && c.service === service && (spiffe === undefined || c.sourceSpiffe === spiffe)).length
    return {...figures, active, bytesPerSecond: 0, refusedRecently: false, reporter: 'destination'}
  }

  const origin = input.readings.get(source)
  if (!origin?.dump) return undefined
  const figures = counters(origin.samples, (l) => l.reporter === 'source' && l.destination_service === service && l.destination_workload === host)
  const active = origin.dump.connections.filter((c) => c.direction === 'outbound' && c.service === service && c.destinationAgent === host).length
  return {...figures, active, bytesPerSecond: 0, refusedRecently: false, reporter: 'source'}
}

function inboundStats(input: GraphInput, tunnel: InboundTunnel): EdgeStats | undefined {
  const reading = input.readings.get(tunnel.agent)
  if (!reading?.dump) return undefined
  const figures = counters(reading.samples, (l) => l.reporter === 'source' && l.destination_service === tunnel.service)
  const active = reading.dump.connections.filter((c) => c.direction === 'outbound' && c.service === tunnel.service).length
  return {...figures, active, bytesPerSecond: 0, refusedRecently: false, reporter: 'source'}
}

export function buildGraph(input: GraphInput): {edges: GraphEdge[]; nodes: GraphNode[]} {
  const nodes = new Map<string, GraphNode>()
  const edges = new Map<string, GraphEdge>()
  const addAgent = (name: string): void => {
    if (!nodes.has(agentId(name))) nodes.set(agentId(name), {detail: 'never connected', id: agentId(name), kind: 'agent', label: name, state: 'offline'})
  }

  for (const agent of input.agents) {
    const state = !agent.online ? 'offline' : agent.status === 'SYNCED' ? 'online' : 'stale'
    const reading = input.readings.get(agent.name)
    const reach = reading?.dump ? '' : reading ? ' · admin out of reach' : ''
    nodes.set(agentId(agent.name), {detail: `${agent.online ? 'online' : 'offline'} · ${agent.status.toLowerCase()}${reach}`, id: agentId(agent.name), kind: 'agent', label: agent.name, state})
  }

  for (const tunnel of input.inbound) {
    addAgent(tunnel.agent)
    const key = `${tunnel.service}@${tunnel.agent}`
    const bound = input.readings.get(tunnel.agent)?.dump?.config.addresses.inbound[key]
    const listener = `listen:${key}`
    nodes.set(listener, {detail: `inbound ${tunnel.service}`, id: listener, kind: 'listener', label: bound ?? tunnel.listen})
    edges.set(`inbound:${key}`, {id: `inbound:${key}`, kind: 'inbound', service: tunnel.service, source: listener, stats: inboundStats(input, tunnel), target: agentId(tunnel.agent)})
  }

  for (const tunnel of input.outbound) {
    addAgent(tunnel.agent)
    for (const {host, port} of tunnel.targets) {
      const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
      const target = `target:${tunnel.agent}>${address}`
      nodes.set(target, {detail: `${tunnel.service} target`, id: target, kind: 'target', label: address})
      const id = `outbound:${tunnel.service}@${tunnel.agent}>${address}`
      edges.set(id, {id, kind: 'outbound', service: tunnel.service, source: agentId(tunnel.agent), target})
    }
  }

  // Configured paths: every agent where a service enters, to every agent that hosts it.
  const meshPaths = new Map<GraphEdge, {host: string; service: string; source: string}>()
  const addMesh = (service: string, source: string, host: string): void => {
    const id = meshEdgeId(service, source, host)
    if (edges.has(id)) return
    const edge: GraphEdge = {id, kind: 'mesh', service, source: agentId(source), target: agentId(host)}
    edges.set(id, edge)
    meshPaths.set(edge, {host, service, source})
  }

  for (const entry of input.inbound) {
    for (const exit of input.outbound) if (exit.service === entry.service) addMesh(entry.service, entry.agent, exit.agent)
  }

  // Observed paths: whoever the hosting agents saw connecting (sidecars, workloads, other identities).
  for (const [host, reading] of input.readings) {
    for (const {labels} of reading.samples) {
      const {destination_service: service, reporter, source_workload: source} = labels
      if (reporter !== 'destination' || !service || service === 'unknown' || !source || source === 'unknown') continue
      if (!nodes.has(agentId(source))) {
        nodes.set(agentId(source), {detail: source.includes('/') ? 'workload' : 'identity', id: agentId(source), kind: 'source', label: source})
      }

      addMesh(service, source, host)
    }
  }

  for (const [edge, {host, service, source}] of meshPaths) edge.stats = meshStats(input, service, source, host)

  const byId = (a: {id: string}, b: {id: string}): number => a.id.localeCompare(b.id)
  return {edges: [...edges.values()].sort(byId), nodes: [...nodes.values()].sort(byId)}
}

interface EdgeHistory {
  at: number
  bytes: number
  lastRefusalAt?: number
  refused: number
}

/** Bytes per second and recent refusals: each edge's figures against the previous round's. */
export class EdgeRates {
  private history = new Map<string, EdgeHistory>()

  apply(edges: GraphEdge[], now = Date.now()): void {
    const next = new Map<string, EdgeHistory>()
    for (const edge of edges) {
      const stats = edge.stats
      if (!stats) continue
      const previous = this.history.get(edge.id)
      const seconds = previous ? (now - previous.at) / 1000 : 0
      stats.bytesPerSecond = previous && seconds > 0 ? Math.max(0, stats.bytes - previous.bytes) / seconds : 0
      const lastRefusalAt = previous && stats.refused > previous.refused ? now : previous?.lastRefusalAt
      stats.refusedRecently = lastRefusalAt !== undefined && now - lastRefusalAt < REFUSAL_WINDOW_MS
      next.set(edge.id, {at: now, bytes: stats.bytes, lastRefusalAt, refused: stats.refused})
    }

    this.history = next
  }
}

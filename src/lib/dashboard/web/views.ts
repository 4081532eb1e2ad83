// The tables: traffic (beside the graph), connections, identities, policies and sync. Each is redrawn from
// one snapshot; what the user typed (filters, forms) lives outside them and survives every round.
import type {AgentView, DashboardSnapshot, GraphEdge, GraphNode, IdentityView, Policy} from '../model.js'
import {fillTable, formatBytes, formatRate, h, since, until} from './dom.js'

const labelOf = (nodes: Map<string, GraphNode>, id: string): string => nodes.get(id)?.label ?? id

export function trafficRows(snapshot: DashboardSnapshot, selected: string | undefined, onSelect: (id: string) => void): HTMLTableRowElement[] {
  const nodes = new Map(snapshot.graph.nodes.map((node) => [node.id, node]))
  return snapshot.graph.edges.filter((edge) => edge.kind === 'mesh').map((edge) => {
    const stats = edge.stats
    return h('tr', {'data-edge': edge.id, 'data-selected': edge.id === selected, onclick: () => onSelect(edge.id)},
      h('td', {}, `${labelOf(nodes, edge.source)} → ${labelOf(nodes, edge.target)}`, h('span', {class: 'sub'}, edge.service)),
      h('td', {class: 'num', 'data-field': 'total'}, stats ? String(stats.total) : '–'),
      h('td', {class: 'num', 'data-field': 'active'}, stats ? String(stats.active) : '–'),
      h('td', {class: 'num'}, stats ? formatRate(stats.bytesPerSecond) : '–'),
      h('td', {class: `num${stats?.refusedRecently ? ' bad-text' : ''}`, 'data-field': 'refused'}, stats ? String(stats.refused) : '–'))
  })
}

function definitionList(entries: [string, string | undefined][]): HTMLElement {
  return h('dl', {}, ...entries.filter(([, value]) => value !== undefined && value !== '').flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value!)]))
}

export function details(snapshot: DashboardSnapshot, id: string | undefined): HTMLElement {
  const node = snapshot.graph.nodes.find((candidate) => candidate.id === id)
  const edge = snapshot.graph.edges.find((candidate) => candidate.id === id)
  if (node?.kind === 'agent') {
    const agent = snapshot.agents.find((candidate) => candidate.name === node.label)
    return agentDetails(node, agent)
  }

  if (node) return definitionList([['Kind', node.kind], ['Name', node.label], ['About', node.detail]])
  if (edge) return edgeDetails(snapshot, edge)
  return h('p', {class: 'hint'}, 'Select an agent or an edge.')
}

function agentDetails(node: GraphNode, agent: AgentView | undefined): HTMLElement {
  return definitionList([
    ['Agent', node.label], ['State', node.detail], ['SPIFFE ID', agent?.spiffe], ['HBONE', agent?.hbone],
    ['Config', agent ? `${agent.ackedVersion ?? '–'} (${agent.status})` : undefined], ['Last seen', agent?.online ? 'now' : since(agent?.lastSeen)],
    ['Admin port', agent?.admin ? `${agent.admin} (${agent.adminState})` : 'not known here'], ['Data path', agent?.dataPath],
    ['Connections', agent?.connections === undefined ? undefined : String(agent.connections)], ['Certificate', agent?.certNotAfter ? `expires ${until(agent.certNotAfter)}` : undefined],
  ])
}

function edgeDetails(snapshot: DashboardSnapshot, edge: GraphEdge): HTMLElement {
  const nodes = new Map(snapshot.graph.nodes.map((node) => [node.id, node]))
  const stats = edge.stats
  return definitionList([
    ['Path', `${labelOf(nodes, edge.source)} → ${labelOf(nodes, edge.target)}`], ['Service', edge.service], ['Kind', edge.kind],
    ['Opened', stats && String(stats.total)], ['Live', stats && String(stats.active)], ['Bytes', stats && formatBytes(stats.bytes)],
    ['Rate', stats && formatRate(stats.bytesPerSecond)], ['Refused', stats && `${stats.refused}${stats.refusedRecently ? ' (recently)' : ''}`],
    ['Errors', stats && String(stats.errors)], ['Counted by', stats && `${stats.reporter === 'destination' ? 'the hosting agent' : 'the source agent'}`],
  ])
}

const who = (spiffe: string | undefined, address: string): HTMLElement => h('td', {}, h('span', {class: 'mono'}, spiffe ?? 'no identity'), h('span', {class: 'sub mono'}, address))

export function connectionRows(snapshot: DashboardSnapshot, filter: string, direction: string): HTMLTableRowElement[] {
  const words = filter.toLowerCase().split(/\s+/).filter(Boolean)
  const now = Date.parse(snapshot.at)
  return snapshot.connections
    .filter((c) => !direction || c.direction === direction)
    .filter((c) => {
      const haystack = [c.agent, c.direction, c.service, c.sourceSpiffe, c.destinationSpiffe, c.sourceAddress, c.destinationAddress, c.target].join(' ').toLowerCase()
      return words.every((word) => haystack.includes(word))
    })
    .map((c) => h('tr', {'data-connection': c.id},
      h('td', {}, c.agent), h('td', {}, h('span', {class: `badge ${c.direction === 'inbound' ? 'accent' : ''}`}, c.direction)), h('td', {}, c.service),
      who(c.sourceSpiffe, c.sourceAddress), who(c.destinationSpiffe, c.destinationAddress), h('td', {class: 'mono'}, c.target), h('td', {class: 'num'}, since(c.startedAt, now).replace(' ago', ''))))
}

const STATUS_BADGE: Record<string, string> = {NEVER_CONNECTED: '', STALE: 'warn', SYNCED: 'ok', active: 'ok', pending: 'warn', revoked: 'bad'}

export const statusBadge = (status: string): HTMLElement => h('span', {class: `badge ${STATUS_BADGE[status.replaceAll(' ', '_')] ?? ''}`}, status)

export function identityRows(identities: IdentityView[], onRevoke: (name: string) => void): HTMLTableRowElement[] {
  return identities.map((identity) => h('tr', {'data-identity': identity.name},
    h('td', {}, h('b', {}, identity.name), identity.admin ? h('span', {class: 'sub'}, identity.self ? 'admin · this dashboard' : 'admin') : null),
    h('td', {}, ...(identity.roles.length > 0 ? identity.roles.map((role) => h('span', {class: 'chip'}, `#${role}`)) : ['–'])),
    h('td', {}, statusBadge(identity.status)),
    h('td', {}, identity.online === undefined ? '–' : h('span', {}, h('span', {class: `dot-state ${identity.online ? 'ok' : ''}`}), identity.online ? 'online' : 'offline')),
    h('td', {title: identity.certNotAfter ?? 'known for agents whose admin port this dashboard reaches, and for itself'}, until(identity.certNotAfter)),
    h('td', {class: 'mono'}, identity.spiffe),
    h('td', {}, h('button', {
      class: 'small link-danger', disabled: identity.self || identity.status === 'revoked', onclick: () => onRevoke(identity.name),
      title: identity.self ? 'the dashboard acts as this identity' : `revoke ${identity.name}`,
    }, 'Revoke'))))
}

const any = (items: readonly (number | string)[]): string => (items.length === 0 ? 'any' : items.join(', '))

export function policyRows(policies: Policy[], onDelete: (name: string) => void): HTMLTableRowElement[] {
  return policies.map((policy) => h('tr', {'data-policy': policy.name},
    h('td', {}, h('b', {}, policy.name)), h('td', {}, h('span', {class: `badge ${policy.action === 'DENY' ? 'bad' : 'ok'}`}, policy.action)),
    h('td', {}, policy.services.length === 0 ? 'every service' : policy.services.join(', ')), h('td', {}, any(policy.from)),
    h('td', {}, any(policy.ports)), h('td', {}, any(policy.sourceCidrs)),
    h('td', {}, h('button', {class: 'small link-danger', onclick: () => onDelete(policy.name)}, 'Delete'))))
}

export function syncRows(agents: AgentView[]): HTMLTableRowElement[] {
  return agents.map((agent) => h('tr', {'data-agent': agent.name},
    h('td', {}, h('b', {}, agent.name), agent.spiffe ? h('span', {class: 'sub mono'}, agent.spiffe) : null), h('td', {}, statusBadge(agent.status)),
    h('td', {class: 'num'}, String(agent.ackedVersion ?? '–')), h('td', {}, h('span', {class: `dot-state ${agent.online ? 'ok' : ''}`}), agent.online ? 'yes' : 'no'),
    h('td', {}, agent.online ? 'now' : since(agent.lastSeen)), h('td', {}, agent.reason ?? '–'),
    h('td', {}, agent.admin ? `${agent.admin} (${agent.adminState})` : 'not known here'), h('td', {}, agent.dataPath ?? '–')))
}

export function renderTables(snapshot: DashboardSnapshot, handlers: {onDelete: (name: string) => void; onRevoke: (name: string) => void}): void {
  const table = (id: string): HTMLTableElement => document.querySelector<HTMLTableElement>(`#${id}`)!
  fillTable(table('identities-table'), identityRows(snapshot.identities, handlers.onRevoke), 'No identities.')
  fillTable(table('policies-table'), policyRows(snapshot.policies, handlers.onDelete), 'No policies: every mesh identity may reach every service its tunnels allow.')
  fillTable(table('sync-table'), syncRows(snapshot.agents), 'No agent has connected yet. Start one with `ztctl agent run -i IDENTITY.json`.')
}

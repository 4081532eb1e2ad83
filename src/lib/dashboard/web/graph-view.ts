// The graph: cytoscape with a left-to-right dagre layout (where traffic enters → agents → where it leaves).
// Elements are updated in place every round; the layout runs again only when the set of elements changes,
// so nothing jumps while traffic figures move. Colours come from the page's CSS variables (light / dark).
import cytoscape, {type Core, type ElementDefinition, type StylesheetJson} from 'cytoscape'
import dagre from 'cytoscape-dagre'

import type {EdgeStats, GraphEdge, GraphNode} from '../model.js'
import {formatRate, h} from './dom.js'

cytoscape.use(dagre)

const css = (name: string): string => getComputedStyle(document.documentElement).getPropertyValue(name).trim()

export function edgeLabel(edge: GraphEdge): string {
  const stats = edge.stats
  if (edge.kind !== 'mesh') return ''
  if (!stats) return `${edge.service}\n(no figures: agents out of reach)`
  const counts = `${stats.total} conn${stats.total === 1 ? '' : 's'} · ${stats.active} live`
  const extra = [...(stats.bytesPerSecond > 0 ? [formatRate(stats.bytesPerSecond)] : []), ...(stats.refused > 0 ? [`${stats.refused} refused`] : [])]
  return [edge.service, counts, ...(extra.length > 0 ? [extra.join(' · ')] : [])].join('\n')
}

const nodeLabel = (node: GraphNode): string => (node.detail ? `${node.label}\n${node.detail}` : node.label)

function edgeClasses(edge: GraphEdge): string {
  const classes: string[] = [edge.kind]
  if (edge.stats?.refusedRecently) classes.push('refused')
  if (edge.stats && edge.stats.active > 0) classes.push('busy')
  return classes.join(' ')
}

function stylesheet(): StylesheetJson {
  const [text, muted, surface, border, accent, ok, warn, bad, edge, node, listener] =
    ['--text', '--muted', '--surface', '--border', '--accent', '--ok', '--warn', '--bad', '--edge', '--node', '--listener'].map((name) => css(name))
  const font = css('--sans')
  return [
    {selector: 'node', style: {
      'background-color': node, 'border-color': border, 'border-width': 1.5, color: text, 'font-family': font, 'font-size': 13, height: 54,
      label: 'data(label)', shape: 'round-rectangle', 'text-halign': 'center', 'text-valign': 'center', 'text-wrap': 'wrap', width: 168,
    }},
    {selector: 'node[kind = "agent"]', style: {'border-width': 2.5, 'font-size': 14, 'font-weight': 600, height: 64, width: 190}},
    {selector: 'node[state = "online"]', style: {'border-color': ok}},
    {selector: 'node[state = "stale"]', style: {'border-color': warn}},
    {selector: 'node[state = "offline"]', style: {'border-color': muted, 'border-style': 'dashed', color: muted}},
    {selector: 'node[kind = "listener"], node[kind = "target"]', style: {'background-color': listener, color: muted, 'font-family': css('--mono'), 'font-size': 12, height: 46, width: 160}},
    {selector: 'node[kind = "target"]', style: {shape: 'cut-rectangle'}},
    {selector: 'node[kind = "source"]', style: {shape: 'ellipse', width: 150}},
    {selector: 'node:selected', style: {'overlay-color': accent, 'overlay-opacity': 0.12, 'overlay-padding': 6}},
    {selector: 'edge', style: {
      'arrow-scale': 0.9, color: text, 'curve-style': 'bezier', 'font-family': font, 'font-size': 12, label: 'data(label)', 'line-color': edge,
      'target-arrow-color': edge, 'target-arrow-shape': 'triangle', 'text-background-color': surface, 'text-background-opacity': 0.92,
      'text-background-padding': '3px', 'text-background-shape': 'roundrectangle', 'text-wrap': 'wrap', width: 1.5,
    }},
    {selector: 'edge.inbound, edge.outbound', style: {'line-style': 'dashed', 'line-dash-pattern': [6, 4], width: 1.2}},
    // HBONE edges run left to right: their figures sit just above the line, clear of it.
    {selector: 'edge.mesh', style: {'font-weight': 600, 'line-color': accent, 'target-arrow-color': accent, 'text-margin-y': -24, width: 3}},
    {selector: 'edge.mesh.busy', style: {width: 5}},
    {selector: 'edge.mesh.refused', style: {color: bad, 'line-color': bad, 'target-arrow-color': bad}},
    {selector: 'edge:selected', style: {'overlay-color': accent, 'overlay-opacity': 0.15, 'overlay-padding': 5}},
  ]
}

export interface GraphView {
  update(nodes: GraphNode[], edges: GraphEdge[]): void
  select(id: string): void
}

export function createGraphView(container: HTMLElement, summary: HTMLElement, onSelect: (id: string | undefined) => void): GraphView {
  const cy: Core = cytoscape({
    autoungrabify: false, boxSelectionEnabled: false, container, maxZoom: 1.6, minZoom: 0.3, style: stylesheet(),
  })
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => cy.style(stylesheet()))
  cy.on('tap', (event) => onSelect(event.target === cy ? undefined : (event.target as cytoscape.SingularElementReturnValue).id()))
  new ResizeObserver(() => {
    cy.resize()
    cy.fit(undefined, 36)
  }).observe(container)
  let shape = ''

  const relayout = (): void => {
    // HBONE edges span two ranks: room for their figures; a tunnel's ends sit close to their agent.
    const minLen = (edge: cytoscape.EdgeSingular): number => (edge.hasClass('mesh') ? 4 : 1)
    cy.layout({fit: true, minLen, name: 'dagre', nodeSep: 40, padding: 32, rankDir: 'LR', rankSep: 45} as cytoscape.LayoutOptions).run()
  }

  return {
    select(id) {
      cy.elements().unselect()
      cy.getElementById(id).select()
    },
    update(nodes, edges) {
      const definitions: ElementDefinition[] = [
        ...nodes.map((node) => ({data: {...node, label: nodeLabel(node)}, group: 'nodes' as const})),
        ...edges.map((edge) => ({classes: edgeClasses(edge), data: {...edge, label: edgeLabel(edge)}, group: 'edges' as const})),
      ]
      const ids = new Set(definitions.map((definition) => definition.data.id!))
      cy.batch(() => {
        cy.elements().filter((element) => !ids.has(element.id())).remove()
        for (const definition of definitions) {
          const existing = cy.getElementById(definition.data.id!)
          if (existing.nonempty()) {
            existing.data(definition.data)
            if (definition.classes !== undefined) existing.classes(definition.classes)
          } else {
            cy.add(definition)
          }
        }
      })
      const nextShape = [...ids].sort().join('\n')
      if (nextShape !== shape) {
        shape = nextShape
        relayout()
      }

      // What the canvas shows, as text: for screen readers, and for anyone who cannot see the picture.
      summary.replaceChildren(...cy.elements().map((element) => {
        const data = element.data() as (GraphEdge | GraphNode) & {label: string}
        const stats = (data as GraphEdge).stats as EdgeStats | undefined
        return h('li', {data: {active: String(stats?.active ?? ''), id: element.id(), refused: String(stats?.refused ?? ''), total: String(stats?.total ?? '')}},
          element.isNode() ? `${(data as GraphNode).kind} ${data.label.replace('\n', ': ')}` : `${element.source().data('label').split('\n')[0]} → ${element.target().data('label').split('\n')[0]}: ${data.label.replaceAll('\n', ', ') || (data as GraphEdge).kind}`)
      }))
    },
  }
}

// The page: one snapshot of the mesh at a time from the server's event stream, five views over it, and
// the forms that change it (each answered once the agents applied the change).
import type {ChangeResult, DashboardSnapshot, Explanation} from '../model.js'
import {ApiError, post} from './api.js'
import {$, fillTable, h, values} from './dom.js'
import {createGraphView} from './graph-view.js'
import {connectionRows, details, renderTables, trafficRows} from './views.js'

const VIEWS = ['graph', 'connections', 'identities', 'policies', 'sync'] as const
type View = (typeof VIEWS)[number]

let snapshot: DashboardSnapshot | undefined
let selected: string | undefined
let receivedAt = 0

// The token has done its job (the cookie carries the session now): keep it out of the address bar and history.
if (location.search) history.replaceState(null, '', `/${location.hash}`)

const graph = createGraphView($('#graph'), $('#graph-summary'), (id) => {
  selected = id
  renderSide()
})

function currentView(): View {
  const view = location.hash.slice(1) as View
  return VIEWS.includes(view) ? view : 'graph'
}

function showView(): void {
  const view = currentView()
  for (const name of VIEWS) {
    $(`#view-${name}`).hidden = name !== view
    const tab = $(`.tabs a[data-view="${name}"]`)
    if (name === view) tab.setAttribute('aria-current', 'page')
    else tab.removeAttribute('aria-current')
  }
}

function toast(message: string, options: {error?: boolean; sub?: string} = {}): void {
  const element = $('#toast')
  element.className = `toast${options.error ? ' error' : ''}`
  element.replaceChildren(message, ...(options.sub ? [h('span', {class: 'sub'}, options.sub)] : []))
  element.hidden = false
  clearTimeout(Number(element.dataset.timer))
  element.dataset.timer = String(setTimeout(() => (element.hidden = true), options.error ? 9000 : 5000))
}

function failed(error: unknown): void {
  toast(error instanceof Error ? error.message : String(error), {error: true, sub: error instanceof ApiError ? error.suggestion : undefined})
}

const changed = (result: ChangeResult): void => {
  const pending = result.pending.length > 0 ? ` Not yet applied by ${result.pending.join(', ')}.` : ''
  toast(`${result.message}.`, {sub: `Config version ${result.version}, applied by ${result.applied.join(', ') || 'no online agent'}.${pending}`})
}

function confirmAction(title: string, text: string, ok: string): Promise<boolean> {
  const dialog = $<HTMLDialogElement>('#confirm')
  $('#confirm-title').textContent = title
  $('#confirm-text').textContent = text
  $('#confirm-ok').textContent = ok
  dialog.returnValue = ''
  dialog.showModal()
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), {once: true}))
}

async function revoke(name: string): Promise<void> {
  const sure = await confirmAction(`Revoke ${name}?`, `Its certificates are refused from now on, its live connections are closed and its token can no longer enroll. This cannot be undone: a new identity needs a new enrollment.`, `Revoke ${name}`)
  if (sure) await post<ChangeResult>('/api/identities/revoke', {name}).then(changed, failed)
}

async function deletePolicy(name: string): Promise<void> {
  const sure = await confirmAction(`Delete policy ${name}?`, 'Agents stop applying it as soon as they receive the change.', 'Delete')
  if (sure) await post<ChangeResult>('/api/policies/delete', {name}).then(changed, failed)
}

function renderSide(): void {
  if (!snapshot) return
  fillTable($<HTMLTableElement>('#traffic'), trafficRows(snapshot, selected, (id) => {
    selected = id
    graph.select(id)
    renderSide()
  }), 'No traffic paths yet: open an inbound and an outbound tunnel for a service.')
  $('#details').replaceChildren(details(snapshot, selected))
}

function renderConnections(): void {
  if (!snapshot) return
  const rows = connectionRows(snapshot, $<HTMLInputElement>('#connection-filter').value, $<HTMLSelectElement>('#connection-direction').value)
  fillTable($<HTMLTableElement>('#connections-table'), rows, snapshot.connections.length === 0 ? 'No live connections right now.' : 'No connection matches the filter.')
  $('#connection-count').textContent = `${rows.length} of ${snapshot.connections.length} live connections`
}

function renderHeader(): void {
  if (!snapshot) return
  $('#context').replaceChildren('context ', h('b', {}, snapshot.context.name), ` · ${snapshot.context.controller} · config version ${snapshot.version}`)
  const synced = snapshot.agents.filter((agent) => agent.status === 'SYNCED').length
  $('#count-connections').textContent = String(snapshot.connections.length)
  $('#count-identities').textContent = String(snapshot.identities.length)
  $('#count-policies').textContent = String(snapshot.policies.length)
  $('#count-sync').textContent = `${synced}/${snapshot.agents.length}`
  const problems = $('#problems')
  problems.hidden = snapshot.problems.length === 0
  problems.replaceChildren(...snapshot.problems.map((problem) => h('p', {}, problem)))
  $('#service-names').replaceChildren(...snapshot.services.map((service) => h('option', {value: service})))
  const subjects = [...snapshot.identities.map((identity) => `@${identity.name}`), ...new Set(snapshot.identities.flatMap((identity) => identity.roles.map((role) => `#${role}`)))]
  $('#subject-names').replaceChildren(...subjects.map((subject) => h('option', {value: subject})))
}

function render(): void {
  if (!snapshot) return
  renderHeader()
  graph.update(snapshot.graph.nodes, snapshot.graph.edges)
  renderSide()
  renderConnections()
  renderTables(snapshot, {onDelete: (name) => void deletePolicy(name), onRevoke: (name) => void revoke(name)})
}

function setLive(state: 'connecting' | 'down' | 'live', text: string): void {
  $('#live').dataset.state = state
  $('#live-text').textContent = text
}

/** Why the page is not live, when it is not (the stream broke, or the controller did not answer). */
let down: string | undefined

function showLive(): void {
  if (down) return setLive('down', down)
  if (receivedAt === 0) return
  const age = Math.round((Date.now() - receivedAt) / 1000)
  setLive(age > 10 ? 'down' : 'live', age > 10 ? `no update for ${age}s` : `live · updated ${age}s ago`)
}

function connect(): void {
  const events = new EventSource('/api/events')
  events.addEventListener('snapshot', (event) => {
    snapshot = JSON.parse((event as MessageEvent<string>).data) as DashboardSnapshot
    receivedAt = Date.now()
    down = undefined
    render()
    showLive()
  })
  events.addEventListener('problem', (event) => {
    const {message} = JSON.parse((event as MessageEvent<string>).data) as {message: string}
    down = 'controller unreachable'
    $('#problems').hidden = false
    $('#problems').replaceChildren(h('p', {}, message))
    showLive()
  })
  events.addEventListener('error', () => {
    down = 'reconnecting…'
    showLive()
  })
}

setInterval(showLive, 1000)

$<HTMLFormElement>('#policy-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const form = event.currentTarget as HTMLFormElement
  const data = new FormData(form)
  const body = {
    action: data.get('action'), from: values(data.get('from')), name: String(data.get('name') ?? '').trim(),
    ports: values(data.get('ports')), services: values(data.get('services')), sourceCidrs: values(data.get('sourceCidrs')),
  }
  const button = form.querySelector('button')!
  button.disabled = true
  post<ChangeResult>('/api/policies', body).then((result) => {
    changed(result)
    form.reset()
  }, failed).finally(() => (button.disabled = false))
})

function renderExplanation(result: Explanation): HTMLElement {
  return h('div', {},
    ...result.verdicts.map((verdict) => h('div', {class: `verdict ${verdict.decision.allowed ? 'allowed' : 'denied'}`, 'data-policy': verdict.decision.policy ?? ''},
      h('h3', {}, `${verdict.agent}:${verdict.port} — ${verdict.summary}`),
      h('ol', {}, ...verdict.steps.map((step) => h('li', {class: step.verdict}, step.text))))),
    ...result.notes.map((note) => h('p', {class: 'note'}, note)))
}

$<HTMLFormElement>('#explain-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const data = new FormData(event.currentTarget as HTMLFormElement)
  post<Explanation>('/api/explain', {from: data.get('from'), sourceIp: data.get('sourceIp'), to: data.get('to')})
    .then((result) => $('#explain-result').replaceChildren(renderExplanation(result)), (error: unknown) => {
      $('#explain-result').replaceChildren()
      failed(error)
    })
})

$('#connection-filter').addEventListener('input', renderConnections)
$('#connection-direction').addEventListener('change', renderConnections)
addEventListener('hashchange', showView)
showView()
connect()

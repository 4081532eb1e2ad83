// `ztctl dashboard` as a user meets it: a real quickstart mesh, the dashboard command against its context, and
// Debian's Chromium (headless, through playwright-core) driving the page: the graph, live traffic from curl,
// a DENY policy created in the page that refuses the next curl and shows on the edge, `policy explain`, the
// connections with SPIFFE IDs, revoking an identity, sync; and the server refusing what lacks the token.
// Screenshots of the graph (light, dark) go to docs/images/ with ZTCTL_UPDATE_SCREENSHOTS=1.
import assert from 'node:assert/strict'
import {type ChildProcess, spawn} from 'node:child_process'
import {once} from 'node:events'
import {copyFile, mkdtemp, readFile, rm} from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'
import {fileURLToPath} from 'node:url'

import {chromium, type Page} from 'playwright-core'

import {RUN_JS, runCli} from '../helpers/controller.js'
import {startQuickstart} from '../helpers/quickstart.js'
import {requirePackages} from '../helpers/tools.js'

const CHROMIUM = '/usr/bin/chromium'
const DOCS_IMAGES = fileURLToPath(new URL('../../docs/images/', import.meta.url))
const EDGE = 'mesh:tcp/demo:agent-a>agent-b'

/** `curl` once through the tunnel: its exit code (0 = the demo answered). */
async function curl(url: string): Promise<number> {
  const child = spawn('curl', ['-sS', '-o', '/dev/null', '--max-time', '5', url], {stdio: 'ignore'})
  const [code] = (await once(child, 'exit')) as [number]
  return code
}

/** One request with exactly these headers (fetch cannot set Host); resolves with status and headers. */
function rawRequest(address: string, options: {headers?: Record<string, string>; method?: string; path?: string}): Promise<{headers: http.IncomingHttpHeaders; status: number}> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))]
  return new Promise((resolve, reject) => {
    const request = http.request({agent: false, headers: options.headers, host, method: options.method ?? 'GET', path: options.path ?? '/', port, setHost: false}, (response) => {
      response.resume()
      response.on('end', () => resolve({headers: response.headers, status: response.statusCode!}))
    })
    request.on('error', reject)
    request.end(options.method === 'POST' ? '{}' : undefined)
  })
}

async function startDashboard(t: {after(fn: () => void): void}, home: string): Promise<{child: ChildProcess; url: string}> {
  const child = spawn(process.execPath, [RUN_JS, 'dashboard', '--listen', '127.0.0.1:0', '--json'], {env: {...process.env, NO_COLOR: '1', ZTCTL_HOME: home}, stdio: ['ignore', 'pipe', 'pipe']})
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk))
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk))
  const deadline = Date.now() + 30_000
  while (!stdout.includes('}') && Date.now() < deadline && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 50))
  assert.ok(stdout.includes('}'), `ztctl dashboard printed no URL: ${stderr}`)
  return {child, url: (JSON.parse(stdout) as {url: string}).url}
}

/** The graph's own text description of the tcp/demo edge (what cytoscape holds), as numbers. */
async function edgeFigures(page: Page): Promise<{active: number; refused: number; total: number}> {
  const item = page.locator(`#graph-summary li[data-id="${EDGE}"]`)
  const figure = async (name: string): Promise<number> => Number(await item.getAttribute(`data-${name}`))
  return {active: await figure('active'), refused: await figure('refused'), total: await figure('total')}
}

/** Poll CHECK until it holds; fail after timeoutMs saying what was awaited. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

async function screenshotGraph(page: Page, name: string, dir: string): Promise<string> {
  const file = path.join(dir, name)
  await page.screenshot({path: file})
  const png = await readFile(file)
  assert.equal(png.subarray(1, 4).toString(), 'PNG')
  assert.ok(png.length > 20_000, `${name} is ${png.length} bytes: an empty page?`)
  if (process.env.ZTCTL_UPDATE_SCREENSHOTS === '1') await copyFile(file, path.join(DOCS_IMAGES, name))
  return file
}

test('the dashboard shows the quickstart mesh live, refuses what lacks its token, and changes policy from the page', async (t) => {
  requirePackages('chromium', 'curl')
  const {child: quickstart, mesh} = await startQuickstart(t)
  const env = {...process.env, NO_COLOR: '1', ZTCTL_HOME: mesh.home}
  const {child: dashboard, url} = await startDashboard(t, mesh.home)
  const origin = new URL(url).origin
  const address = new URL(url).host
  const shots = await mkdtemp(path.join(tmpdir(), 'zt-dashboard-shots-'))
  t.after(() => rm(shots, {force: true, recursive: true}))

  // The quickstart serves a dashboard of its own, and says where.
  assert.match(mesh.dashboard?.url ?? '', /^http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{43}$/)
  assert.equal((await fetch(mesh.dashboard!.url)).status, 200)

  // Without the token, nothing; with a foreign Host or Origin, nothing; a change needs the page's CSRF header.
  assert.equal((await fetch(`${origin}/`)).status, 403)
  assert.equal((await fetch(`${origin}/?token=wrong`)).status, 403)
  assert.equal((await fetch(`${origin}/api/snapshot`)).status, 403)
  assert.equal((await fetch(`${origin}/app.js`)).status, 403)
  const entered = await fetch(url)
  assert.equal(entered.status, 200)
  const cookie = entered.headers.get('set-cookie')!.split(';')[0]
  assert.match(entered.headers.get('set-cookie')!, /HttpOnly; SameSite=Strict/)
  assert.match(entered.headers.get('content-security-policy')!, /default-src 'none'.*connect-src 'self'/)
  assert.equal((await fetch(`${origin}/api/snapshot`, {headers: {cookie}})).status, 200)
  assert.equal((await rawRequest(address, {headers: {cookie, host: `evil.example:${new URL(url).port}`}, path: '/api/snapshot'})).status, 403, 'DNS rebinding: a foreign Host')
  assert.equal((await rawRequest(address, {headers: {cookie, host: address, origin: 'http://127.0.0.1:1'}, path: '/api/snapshot'})).status, 403, 'a foreign Origin')
  const post = {'content-type': 'application/json', cookie, host: address, origin}
  assert.equal((await rawRequest(address, {headers: post, method: 'POST', path: '/api/policies'})).status, 403, 'a POST without the CSRF header')
  assert.equal((await rawRequest(address, {headers: {...post, 'x-ztctl-csrf': 'x'.repeat(43)}, method: 'POST', path: '/api/policies'})).status, 403, 'a POST with a wrong CSRF header')
  assert.equal((await rawRequest(address, {headers: {...post, origin: 'http://localhost:1', 'x-ztctl-csrf': 'x'}, method: 'POST', path: '/api/policies'})).status, 403, 'a cross-origin POST')

  const profile = await mkdtemp(path.join(tmpdir(), 'zt-chromium-'))
  t.after(() => rm(profile, {force: true, recursive: true}))
  const browser = await chromium.launchPersistentContext(profile, {
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
    colorScheme: 'light', executablePath: CHROMIUM, headless: true, viewport: {height: 800, width: 1280},
  })
  t.after(() => browser.close())
  const page = browser.pages()[0] ?? (await browser.newPage())
  const requests: string[] = []
  const problems: string[] = []
  page.on('request', (request) => requests.push(request.url()))
  page.on('console', (message) => message.type() === 'error' && problems.push(message.text()))
  page.on('pageerror', (error) => problems.push(error.message))

  await page.goto(url)
  assert.equal(new URL(page.url()).search, '', 'the token leaves the address bar')
  assert.equal(await page.evaluate('document.cookie'), '', 'scripts cannot read the session cookie')
  const [session] = (await browser.cookies(origin)).filter((candidate) => candidate.name === `ztctl_dashboard_${new URL(url).port}`)
  assert.deepEqual([session?.httpOnly, session?.sameSite], [true, 'Strict'])

  // The graph: both agents, the tcp/demo edge between them, where it enters and leaves.
  await page.locator(`#graph-summary li[data-id="${EDGE}"]`).waitFor({state: 'attached'})
  const summary = await page.locator('#graph-summary').innerText()
  assert.match(summary, /agent agent-a: online · synced/)
  assert.match(summary, /agent agent-b: online · synced/)
  assert.match(summary, /agent-a → agent-b: tcp\/demo/)
  assert.match(summary, /listener 127\.0\.0\.1:\d+: inbound tcp\/demo/)

  // curl raises the edge's connection count within 5 s, without a reload.
  const before = await edgeFigures(page)
  assert.equal(await curl(mesh.demo.url), 0)
  const sent = Date.now()
  await until('the edge to count the curl', async () => (await edgeFigures(page)).total > before.total, 5000)
  assert.ok(Date.now() - sent < 5000)
  assert.equal(await page.locator(`#traffic tr[data-edge="${EDGE}"] td[data-field="total"]`).innerText(), String((await edgeFigures(page)).total))

  // A connection held open shows live on the edge and in both agents' tables, with SPIFFE IDs.
  const held = net.connect(Number(new URL(mesh.demo.url).port), '127.0.0.1')
  await once(held, 'connect')
  t.after(() => held.destroy())
  await until('the held connection to show live', async () => (await edgeFigures(page)).active >= 1)
  for (let index = 0; index < 3; index++) assert.equal(await curl(mesh.demo.url), 0)
  await page.waitForTimeout(2500) // one more round: bytes per second of the curls just closed
  await page.click(`#traffic tr[data-edge="${EDGE}"]`)
  assert.match(await page.locator('#details').innerText(), /Counted by\s+the hosting agent/)
  await screenshotGraph(page, 'dashboard-graph.png', shots)
  await page.goto(`${origin}/#connections`)
  const rows = page.locator('#connections-table tbody tr[data-connection]')
  await rows.first().waitFor()
  assert.match(await page.locator('#connections-table').innerText(), /spiffe:\/\/cluster\.local\/identity\/agent-a/)
  assert.match(await page.locator('#connections-table').innerText(), /spiffe:\/\/cluster\.local\/identity\/agent-b/)
  const all = await rows.count()
  assert.ok(all >= 2, `the connection is in agent-a's and agent-b's tables (${all} rows)`)
  await page.fill('#connection-filter', 'inbound agent-b')
  await until('the filter to leave one row', async () => (await rows.count()) === 1)
  assert.match(await page.locator('#connection-count').innerText(), new RegExp(`^1 of ${all} live connections$`))
  held.destroy()

  // A DENY policy made in the page: the next curl fails, the edge shows the refusal, explain names the policy.
  await page.goto(`${origin}/#policies`)
  await page.fill('#policy-form input[name="name"]', 'deny-demo')
  await page.check('#policy-form input[value="DENY"]')
  await page.fill('#policy-form input[name="services"]', 'tcp/demo')
  await page.click('#policy-form button[type="submit"]')
  await page.locator('#toast', {hasText: 'policy deny-demo (DENY) created'}).waitFor()
  assert.match(await page.locator('#toast').innerText(), /applied by agent-a, agent-b/)
  await page.locator('#policies-table tr[data-policy="deny-demo"]').waitFor()
  assert.notEqual(await curl(mesh.demo.url), 0, 'the DENY refuses the next curl')
  await page.goto(`${origin}/#graph`)
  await until('the edge to show the refusal', async () => (await edgeFigures(page)).refused >= 1)
  assert.match(await page.locator('#graph-summary').innerText(), /agent-a → agent-b: tcp\/demo, .*\d+ refused/)
  assert.match(await page.locator(`#traffic tr[data-edge="${EDGE}"] td[data-field="refused"]`).getAttribute('class') ?? '', /bad-text/, 'a recent refusal is marked')
  await page.emulateMedia({colorScheme: 'dark'})
  await page.waitForTimeout(300)
  await screenshotGraph(page, 'dashboard-graph-dark.png', shots)
  await page.emulateMedia({colorScheme: 'light'})

  await page.goto(`${origin}/#policies`)
  await page.fill('#explain-form input[name="from"]', '@agent-a')
  await page.fill('#explain-form input[name="to"]', 'tcp/demo')
  await page.click('#explain-form button[type="submit"]')
  const verdict = page.locator('#explain-result .verdict[data-policy="deny-demo"]')
  await verdict.waitFor()
  assert.match(await verdict.innerText(), /agent-b:\d+ — DENIED by policy "deny-demo"/)
  assert.match(await verdict.innerText(), /DENY "deny-demo" matches/)
  const explained = await runCli(['policy', 'explain', '--from', '@agent-a', '--to', 'tcp/demo', '-o', 'json'], env)
  assert.equal(explained.code, 0, explained.stderr)
  assert.deepEqual((JSON.parse(explained.stdout) as {verdicts: {decision: unknown}[]}).verdicts.map((v) => v.decision), [{allowed: false, policy: 'deny-demo', reason: 'denied by policy "deny-demo"'}])

  // Deleting it (with a confirmation) lets curl through again.
  await page.click('#policies-table tr[data-policy="deny-demo"] button')
  await page.click('#confirm-ok')
  await page.locator('#toast', {hasText: 'policy deny-demo deleted'}).waitFor()
  assert.equal(await curl(mesh.demo.url), 0)

  // Identities: expiry and online state; revoke with a confirmation; the dashboard's own identity cannot be.
  const created = await runCli(['identity', 'create', 'guest', '-a', 'guest', '--out', '-'], env)
  assert.equal(created.code, 0, created.stderr)
  await page.goto(`${origin}/#identities`)
  await page.locator('#identities-table tr[data-identity="guest"]').waitFor()
  assert.match(await page.locator('#identities-table tr[data-identity="agent-a"]').innerText(), /online\s+in \d+h/)
  assert.equal(await page.locator('#identities-table tr[data-identity="admin"] button').isDisabled(), true)
  await page.click('#identities-table tr[data-identity="guest"] button')
  assert.match(await page.locator('#confirm').innerText(), /Revoke guest\?/)
  await page.click('#confirm-ok')
  await page.locator('#toast', {hasText: 'identity guest revoked'}).waitFor()
  const listed = await runCli(['identity', 'list', '-o', 'json'], env)
  const guest = (JSON.parse(listed.stdout) as {name: string; status: string}[]).find((identity) => identity.name === 'guest')
  assert.ok(guest === undefined || guest.status === 'revoked', `guest is ${guest?.status}`)

  // Sync: both agents acknowledged the latest configuration.
  await page.goto(`${origin}/#sync`)
  await until('both agents in the sync table', async () => (await page.locator('#sync-table tbody tr[data-agent]').count()) === 2)
  assert.match(await page.locator('#sync-table tr[data-agent="agent-a"]').innerText(), /SYNCED/)

  assert.deepEqual(requests.filter((request) => !request.startsWith(`${origin}/`)), [], 'the page asks nothing beyond its own server')
  assert.deepEqual(problems, [], 'no script error and no CSP violation')

  await browser.close()
  // Ctrl-C ends both with the README's 130.
  dashboard.kill('SIGINT')
  assert.equal((await once(dashboard, 'exit'))[0], 130)
  quickstart.kill('SIGINT')
  assert.equal((await once(quickstart, 'exit'))[0], 130)
})

// The dashboard's server on a real controller: who gets in (token → cookie, Host, Origin, fetch metadata,
// CSRF on changes), what errors look like, the event stream, and what it refuses to start with.
import assert from 'node:assert/strict'
import http from 'node:http'
import {test} from 'node:test'

import {openSession} from '../../src/lib/client/session.js'
import {startDashboardForContext} from '../../src/lib/dashboard/start.js'
import {runCli, startTestController} from '../helpers/controller.js'

interface Answer {
  body: string
  headers: http.IncomingHttpHeaders
  status: number
}

/** One request with exactly HEADERS (Host included); the body read up to `until` appears (an event stream never ends). */
function request(port: number, options: {body?: string; headers?: Record<string, string>; method?: string; path?: string; until?: string}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const outgoing = http.request({agent: false, headers: {host: `127.0.0.1:${port}`, ...options.headers}, host: '127.0.0.1', method: options.method ?? 'GET', path: options.path ?? '/', port, setHost: false}, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        body += chunk
        if (options.until && body.includes(options.until)) {
          response.destroy()
          resolve({body, headers: response.headers, status: response.statusCode!})
        }
      })
      response.on('end', () => resolve({body, headers: response.headers, status: response.statusCode!}))
    })
    outgoing.on('error', reject)
    outgoing.end(options.body)
  })
}

test('the dashboard lets in only the browser with its token, and only same-origin POSTs change anything', async (t) => {
  const ctl = await startTestController(t)
  const home = {configDir: ctl.home, dataDir: ctl.home}
  const session = await openSession({home})
  t.after(() => session.close())
  const dashboard = await startDashboardForContext({api: session, home, intervalMs: 500, listen: '127.0.0.1:0'})
  t.after(() => dashboard.close())
  const port = Number(new URL(dashboard.url).port)
  const token = new URL(dashboard.url).searchParams.get('token')!
  assert.match(token, /^[\w-]{43}$/, '256 random bits')

  assert.equal((await request(port, {})).status, 403)
  assert.match((await request(port, {})).body, /needs its token/)
  assert.equal((await request(port, {path: '/?token=' + token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')})).status, 403)
  assert.equal((await request(port, {path: `/?token=${token}`, headers: {host: `attacker.example:${port}`}})).status, 403, 'a rebound name')
  const entered = await request(port, {headers: {'sec-fetch-mode': 'navigate', 'sec-fetch-site': 'cross-site'}, path: `/?token=${token}`})
  assert.equal(entered.status, 200, 'a link from elsewhere may open the page')
  const cookie = String(entered.headers['set-cookie']).split(';')[0]
  assert.match(cookie, new RegExp(`^ztctl_dashboard_${port}=[\\w-]{43}$`))
  const csrf = /<meta name="ztctl-csrf" content="([\w-]{43})">/.exec(entered.body)?.[1]
  assert.ok(csrf, 'the page carries its CSRF token')
  assert.equal(entered.headers['x-frame-options'], 'DENY')
  assert.equal(entered.headers['referrer-policy'], 'no-referrer')

  assert.equal((await request(port, {headers: {cookie, host: `localhost:${port}`}, path: '/api/snapshot'})).status, 200, 'localhost names it too')
  assert.equal((await request(port, {headers: {cookie, 'sec-fetch-site': 'same-site'}, path: '/api/snapshot'})).status, 403, 'another port of 127.0.0.1 is same-site, not same-origin')
  assert.equal((await request(port, {headers: {cookie: `ztctl_dashboard_${port}=forged`}, path: '/api/snapshot'})).status, 403)
  const snapshot = JSON.parse((await request(port, {headers: {cookie}, path: '/api/snapshot'})).body) as {context: {name: string}; identities: {name: string; self: boolean}[]}
  assert.equal(snapshot.context.name, 'local')
  assert.deepEqual(snapshot.identities.map((identity) => [identity.name, identity.self]), [['admin', true]])

  const events = await request(port, {headers: {cookie}, path: '/api/events', until: 'event: snapshot'})
  assert.equal(events.headers['content-type'], 'text/event-stream; charset=utf-8')
  assert.match(events.body, /^retry: 500\n\n(.|\n)*event: snapshot\ndata: \{"agents":/)

  const origin = `http://127.0.0.1:${port}`
  const change = (headers: Record<string, string>, body = '{"from":"@nobody","to":"tcp/web"}') =>
    request(port, {body, headers: {'content-type': 'application/json', cookie, origin, 'x-ztctl-csrf': csrf!, ...headers}, method: 'POST', path: '/api/explain'})
  const answered = await change({})
  assert.equal(answered.status, 404, 'a ZtError keeps its meaning')
  assert.match(JSON.parse(answered.body).error.message, /no identity named "nobody"/)
  assert.equal((await change({'x-ztctl-csrf': 'nope'})).status, 403)
  assert.equal((await change({origin: 'http://127.0.0.1:1'})).status, 403)
  assert.equal((await change({'sec-fetch-site': 'cross-site'})).status, 403)
  assert.equal((await change({'content-type': 'text/plain'})).status, 400)
  assert.equal((await change({}, 'not json')).status, 400)
  assert.equal((await change({}, JSON.stringify({from: 'x'.repeat(70_000)}))).status, 400, 'bounded body')
  assert.equal((await request(port, {body: '{}', headers: {'content-type': 'application/json', cookie, 'x-ztctl-csrf': csrf!}, method: 'POST', path: '/api/explain'})).status, 403, 'no Origin')
  assert.equal((await change({}, '{"name":"admin"}')).status, 400, 'explain wants from and to')
  const revokeSelf = await request(port, {body: '{"name":"admin"}', headers: {'content-type': 'application/json', cookie, origin, 'x-ztctl-csrf': csrf!}, method: 'POST', path: '/api/identities/revoke'})
  assert.equal(revokeSelf.status, 400)
  assert.match(JSON.parse(revokeSelf.body).error.message, /would cut the dashboard off/)

  const created = await request(port, {
    body: JSON.stringify({action: 'DENY', from: ['#guest'], name: 'no-guests', ports: [], services: [], sourceCidrs: []}),
    headers: {'content-type': 'application/json', cookie, origin, 'x-ztctl-csrf': csrf!}, method: 'POST', path: '/api/policies',
  })
  assert.equal(created.status, 200, created.body)
  assert.deepEqual(JSON.parse(created.body).pending, [], 'no online agent is left waiting')
  const policies = await runCli(['policy', 'list', '-o', 'json'], ctl.env)
  assert.deepEqual((JSON.parse(policies.stdout) as {items: {name: string}[]}).items.map((policy) => policy.name), ['no-guests'])
})

test('the dashboard refuses to start where it should not', async (t) => {
  const ctl = await startTestController(t)
  const home = {configDir: ctl.home, dataDir: ctl.home}
  const session = await openSession({home})
  t.after(() => session.close())
  await assert.rejects(startDashboardForContext({api: session, home, listen: '192.0.2.1:0'}), /not a loopback address/)
  await assert.rejects(startDashboardForContext({api: session, home, listen: 'nowhere:80'}), /is not an IP address/)
  const taken = await startDashboardForContext({api: session, home, listen: '127.0.0.1:0'})
  t.after(() => taken.close())
  await assert.rejects(startDashboardForContext({api: session, home, listen: taken.address}), (error: Error & {exit?: number}) => /cannot listen/.test(error.message) && error.exit === 6)

  const bad = await runCli(['dashboard', '--agent-admin', 'nonsense'], ctl.env)
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /is not NAME=HOST:PORT/)
  const remote = await runCli(['dashboard', '--listen', '0.0.0.0:0'], ctl.env)
  assert.equal(remote.code, 2)
  assert.match(remote.stderr, /not a loopback address[\s\S]*ssh -L/)
})

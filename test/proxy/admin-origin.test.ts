// The agent's admin listener against what a browser on the same host can be made to send (a real agent
// process): a cross-site form POST to /quitquitquit, DNS rebinding (a foreign Host) to read /config_dump,
// a cross-site POST /logging. All refused (403) and the agent keeps running; local tools (curl, `ztctl
// proxy-config`) still work, and a local POST /quitquitquit still stops it.
import assert from 'node:assert/strict'
import {request as httpRequest} from 'node:http'
import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'

import {emptySnapshot} from '../../src/lib/config/types.js'
import {spawnAgentProcess} from '../helpers/agent-process.js'
import {runCli} from '../helpers/controller.js'
import {createMesh, tempDir} from './helpers.js'

interface Sent {
  body: string
  status: number
}

/** One raw HTTP/1.1 request to ADDRESS with exactly these headers (Host included). */
function send(address: string, method: string, requestPath: string, headers: Record<string, string>, body = ''): Promise<Sent> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))]
  return new Promise((resolve, reject) => {
    const request = httpRequest({headers: {...headers, 'content-length': Buffer.byteLength(body)}, host, method, path: requestPath, port, setHost: false}, (response) => {
      let text = ''
      response.on('data', (chunk: Buffer) => (text += chunk))
      response.on('end', () => resolve({body: text, status: response.statusCode ?? 0}))
    })
    request.on('error', reject)
    request.end(body)
  })
}

test('the admin listener refuses foreign Host and Origin headers; the agent keeps running', async (t) => {
  const dir = await tempDir(t)
  const identityFile = path.join(dir, 'agent-a.json')
  const configFile = path.join(dir, 'config.json')
  await writeFile(identityFile, JSON.stringify(await (await createMesh()).identity('agent-a')), {mode: 0o600})
  await writeFile(configFile, JSON.stringify(emptySnapshot()))
  const agent = await spawnAgentProcess(t, {args: ['--config', configFile], identityFile, readyFile: path.join(dir, 'agent-a.ready.json')})
  const admin = agent.ready.addresses.admin!
  const port = admin.slice(admin.lastIndexOf(':') + 1)
  const local = `127.0.0.1:${port}`

  const attacks: [string, string, string, Record<string, string>, string, RegExp][] = [
    ['cross-site form POST', 'POST', '/quitquitquit', {'content-type': 'application/x-www-form-urlencoded', host: local, origin: 'http://evil.example'}, 'x=1', /Origin "http:\/\/evil.example" is another site/],
    ['foreign Host and Origin', 'POST', '/quitquitquit', {host: `evil.example:${port}`, origin: 'http://evil.example'}, '', /Host "evil.example:\d+" is not a loopback address/],
    ['sandboxed page (Origin null)', 'POST', '/quitquitquit', {host: local, origin: 'null'}, '', /Origin "null"/],
    ['DNS rebinding read', 'GET', '/config_dump', {host: `rebind.attacker.example:${port}`}, '', /not a loopback address/],
    ['cross-site POST /logging', 'POST', '/logging?level=debug', {host: `localhost:${port}`, 'sec-fetch-site': 'cross-site'}, '', /Sec-Fetch-Site "cross-site"/],
  ]
  for (const [what, method, requestPath, headers, body, reason] of attacks) {
    const answer = await send(admin, method, requestPath, headers, body)
    assert.equal(answer.status, 403, `${what}: ${answer.body}`)
    assert.match(answer.body, reason, what)
  }

  // Without a Host header node:http itself answers 400 before any route.
  assert.equal((await send(admin, 'POST', '/quitquitquit', {})).status, 400)

  // Still running, log level untouched; local tools are served.
  assert.equal(agent.child.exitCode, null, 'the agent is still running')
  assert.equal((await send(agent.ready.addresses.readiness!, 'GET', '/healthz/ready', {host: 'anything'})).status, 200, 'readiness takes any Host (kubelet probes the pod IP)')
  assert.match((await send(admin, 'POST', '/logging', {host: local})).body, /current log level is info/)
  for (const host of [local, `localhost:${port}`, `[::1]:${port}`, 'localhost']) {
    assert.equal((await send(admin, 'GET', '/config_dump', {host})).status, 200, `Host ${host}`)
  }

  assert.equal((await send(admin, 'GET', '/config_dump', {host: local, origin: `http://${local}`})).status, 200, 'same origin')
  const dump = await runCli(['proxy-config', 'all', '--admin', admin, '-o', 'json'], {...process.env, NO_COLOR: '1'})
  assert.equal(dump.code, 0, dump.stderr)

  // A local tool may still stop it.
  assert.equal((await send(admin, 'POST', '/quitquitquit', {host: local})).status, 200)
  assert.equal(await agent.exited, 0)
})

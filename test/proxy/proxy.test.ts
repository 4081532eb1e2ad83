// The SOCKS5/HTTP proxy in one process, real mutual TLS on 127.0.0.1, real clients (curl, and raw
// SOCKS5 bytes where curl cannot show the reply code): agent-a listens, agent-b and agent-c are exits.
// Names are resolved at the exit; the most specific exit wins; excluded and unlisted targets are
// refused in the client's protocol with a reason; passwords are checked; garbage never hurts the agent.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {createServer} from 'node:http'
import {type AddressInfo, connect, type Socket} from 'node:net'
import {test, type TestContext} from 'node:test'

import {emptySnapshot, type ProxyExit} from '../../src/lib/config/types.js'
import {hashPassword} from '../../src/lib/pki/password.js'
import {createMesh, echoServer, roundTripOn, sha256, startAgent, tempDir, waitFor} from './helpers.js'

function curl(args: string[]): Promise<{code: number; stderr: string; stdout: string}> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], {encoding: 'utf8'}, (error, stdout, stderr) => {
      resolve({code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stderr, stdout})
    })
  })
}

async function webServer(t: TestContext): Promise<number> {
  const server = createServer((request, response) => response.end(`hello from ${request.url} host=${request.headers.host} via=${request.headers['proxy-connection'] ?? '-'}`))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return (server.address() as AddressInfo).port
}

/** A raw SOCKS5 CONNECT (no auth) to HOST:PORT; the reply code, and the socket when it succeeded. */
async function socks5(proxy: string, host: string, port: number): Promise<{code: number; socket: Socket}> {
  const [proxyHost, proxyPort] = [proxy.slice(0, proxy.lastIndexOf(':')), Number(proxy.slice(proxy.lastIndexOf(':') + 1))]
  const socket = connect({host: proxyHost, port: proxyPort})
  socket.on('error', () => {})
  await new Promise((resolve) => socket.once('connect', resolve))
  const name = Buffer.from(host)
  const port2 = Buffer.alloc(2)
  port2.writeUInt16BE(port)
  socket.write(Buffer.concat([Buffer.from([5, 1, 0]), Buffer.from([5, 1, 0, 3, name.length]), name, port2]))
  const reply = await new Promise<Buffer>((resolve) => {
    let seen = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      seen = Buffer.concat([seen, chunk])
      if (seen.length >= 12) {
        socket.off('data', onData)
        resolve(seen)
      }
    }

    socket.on('data', onData)
    socket.once('close', () => resolve(seen))
  })
  assert.deepEqual([...reply.subarray(0, 2)], [5, 0], 'method selection: no authentication')
  return {code: reply[3]!, socket}
}

const port16 = (port: number): Buffer => Buffer.from([port >> 8, port & 0xff])

async function proxyMesh(t: TestContext, exits: Record<string, Omit<ProxyExit, 'agent'>>, users: {name: string; password: string}[] = []) {
  const dir = await tempDir(t)
  const mesh = await createMesh()
  const names = ['agent-a', ...Object.keys(exits)]
  const identities = await Promise.all(names.map((name) => mesh.identity(name)))
  const snapshot = emptySnapshot()
  for (const identity of identities) snapshot.identity[identity.name] = {name: identity.name, roles: ['agent'], spiffe: identity.spiffe}
  snapshot.proxy['agent-a'] = {agent: 'agent-a', listen: '127.0.0.1:0', users: await Promise.all(users.map(async (user) => ({name: user.name, passwordHash: await hashPassword(user.password)})))}
  for (const [agent, exit] of Object.entries(exits)) snapshot.exit[agent] = {agent, ...exit}
  const agents: Record<string, Awaited<ReturnType<typeof startAgent>>> = {}
  for (const identity of identities.slice(1)) {
    agents[identity.name] = await startAgent(t, dir, identity, snapshot, {dataPath: 'native'})
    snapshot.agent[identity.name] = {hbone: agents[identity.name]!.agent.addresses.hbone, name: identity.name, spiffe: identity.spiffe}
  }

  for (const agent of Object.values(agents)) await agent.writeConfig(snapshot)
  const entry = await startAgent(t, dir, identities[0]!, snapshot, {dataPath: 'native'})
  await entry.agent.ready
  const proxy = entry.agent.configDump().proxy!.address!
  return {agents, entry, proxy, snapshot}
}

test('curl --socks5-hostname and curl -x reach a web server through the exit; names are resolved at the exit', async (t) => {
  const web = await webServer(t)
  const {agents, entry, proxy} = await proxyMesh(t, {'agent-b': {allow: [], exclusions: [], targets: ['localhost', '127.0.0.0/8']}})
  const socks = await curl(['--socks5-hostname', proxy, `http://localhost:${web}/a`])
  assert.equal(socks.code, 0, socks.stderr)
  assert.match(socks.stdout, new RegExp(`hello from /a host=localhost:${web}`))
  const forward = await curl(['-x', `http://${proxy}`, `http://localhost:${web}/b?x=1`])
  assert.equal(forward.code, 0, forward.stderr)
  assert.match(forward.stdout, new RegExp(`hello from /b\\?x=1 host=localhost:${web} via=-`), 'origin-form, no Proxy-Connection')
  const tunnel = await curl(['-p', '-x', `http://${proxy}`, `http://127.0.0.1:${web}/c`])
  assert.equal(tunnel.code, 0, tunnel.stderr)
  assert.match(tunnel.stdout, /hello from \/c/)
  const exitLog = await waitFor('the exit logs the proxied connection', () => agents['agent-b']!.logs.find((line) => line.message === 'connection complete' && line['dst.service'] === 'proxy'))
  assert.equal(exitLog['src.identity'], 'spiffe://test.mesh/identity/agent-a')
  assert.equal(entry.agent.metrics.total('opened', {destinationService: 'proxy', reporter: 'source'}), 3)
})

test('bulk data through SOCKS5 arrives byte-identical', async (t) => {
  const echo = await echoServer(t)
  const {proxy} = await proxyMesh(t, {'agent-b': {allow: [], exclusions: [], targets: ['127.0.0.1/32']}})
  const {code, socket} = await socks5(proxy, '127.0.0.1', echo.port)
  assert.equal(code, 0)
  const data = randomBytes(2 * 1024 * 1024)
  assert.equal(sha256(await roundTripOn(socket, data)), sha256(data))
})

test('a client that does not wait for the reply loses nothing: pipelined SOCKS5 and HTTP CONNECT data arrive whole', async (t) => {
  const echo = await echoServer(t)
  const {proxy} = await proxyMesh(t, {'agent-b': {allow: [], exclusions: [], targets: ['127.0.0.1/32']}})
  const port = Number(proxy.slice(proxy.lastIndexOf(':') + 1))
  const target = port16(echo.port)
  const openings = [
    Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1]), target]),
    Buffer.from(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\n\r\n`),
  ]
  for (const opening of openings) {
    // Each opening goes out, then the data in writes of its own while the exit's stream is still
    // being opened (the first one also waits for a new HBONE session).
    const socket = connect({host: '127.0.0.1', port})
    await new Promise((resolve) => socket.once('connect', resolve))
    const data = randomBytes(12 * 1024)
    const received: Buffer[] = []
    socket.on('data', (chunk: Buffer) => received.push(chunk))
    const ended = new Promise((resolve) => socket.once('end', resolve))
    socket.write(opening)
    for (let offset = 0; offset < data.length; offset += 3000) {
      await new Promise((resolve) => setImmediate(resolve))
      socket.write(data.subarray(offset, offset + 3000))
    }

    await waitFor('the echo came back', () => Buffer.concat(received).length >= data.length + (opening[0] === 5 ? 12 : 0), 10_000).catch(() => undefined)
    socket.end()
    await ended
    const all = Buffer.concat(received)
    const reply = opening[0] === 5 ? 12 : all.indexOf('\r\n\r\n') + 4
    assert.ok(reply > 3, `a success reply first: ${all.subarray(0, 40).toString('latin1')}`)
    assert.equal(sha256(all.subarray(reply)), sha256(data), `${opening[0] === 5 ? 'SOCKS5' : 'HTTP CONNECT'}: ${all.length - reply} of ${data.length} bytes echoed`)
  }
})

test('the most specific exit wins; an excluded or unlisted target is refused in the protocol, with a reason', async (t) => {
  const web = await webServer(t)
  const {agents, proxy} = await proxyMesh(t, {
    'agent-b': {allow: [], exclusions: ['127.0.0.3'], targets: ['127.0.0.0/8', 'localhost']},
    'agent-c': {allow: [], exclusions: [], targets: ['127.0.0.1/32']},
  })
  assert.equal((await curl(['-x', `http://${proxy}`, `http://127.0.0.1:${web}/`])).code, 0)
  await waitFor('agent-c (the /32) served it', () => agents['agent-c']!.logs.find((line) => line.message === 'connection complete' && line['dst.service'] === 'proxy'))
  assert.equal(agents['agent-b']!.logs.some((line) => line.message === 'connection complete' && line['dst.service'] === 'proxy'), false)

  const unlisted = await curl(['-x', `http://${proxy}`, `http://example.invalid:${web}/`])
  assert.equal(unlisted.code, 0, 'curl gets an answer')
  assert.match(unlisted.stdout, /no exit serves example\.invalid:\d+/)
  const excluded = await socks5(proxy, '127.0.0.3', web)
  assert.equal(excluded.code, 0x02, 'SOCKS: connection not allowed by ruleset')
  excluded.socket.destroy()
  const status = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://${proxy}`, `http://127.0.0.3:${web}/`])
  assert.equal(status.stdout, '403')
  const unreachable = await socks5(proxy, '127.0.0.1', 1)
  assert.ok([0x04, 0x05].includes(unreachable.code), `SOCKS reply ${unreachable.code}: host unreachable or refused`)
  unreachable.socket.destroy()
})

test('a name that resolves into an excluded CIDR is refused at the exit', async (t) => {
  const web = await webServer(t)
  const {agents, proxy} = await proxyMesh(t, {'agent-b': {allow: [], exclusions: ['127.0.0.0/8'], targets: ['localhost']}})
  const result = await curl(['-x', `http://${proxy}`, `http://localhost:${web}/`])
  assert.match(result.stdout, /resolves to 127\.0\.0\.1, inside the excluded 127\.0\.0\.0\/8/)
  await waitFor('the exit logs why', () => agents['agent-b']!.logs.find((line) => typeof line.error === 'string' && /excluded/.test(line.error)))
})

test('with users, SOCKS5 and HTTP need the password; policies apply to the service "proxy"', async (t) => {
  const web = await webServer(t)
  const {agents, proxy, snapshot} = await proxyMesh(t, {'agent-b': {allow: [], exclusions: [], targets: ['127.0.0.0/8']}}, [{name: 'alice', password: 's3cret'}])
  assert.equal((await curl(['--socks5', proxy, '--proxy-user', 'alice:s3cret', `http://127.0.0.1:${web}/`])).code, 0)
  assert.notEqual((await curl(['--socks5', proxy, '--proxy-user', 'alice:wrong', `http://127.0.0.1:${web}/`])).code, 0)
  const anonymous = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://${proxy}`, `http://127.0.0.1:${web}/`])
  assert.equal(anonymous.stdout, '407')
  assert.match((await curl(['-x', `http://alice:s3cret@${proxy}`, `http://127.0.0.1:${web}/ok`])).stdout, /hello from \/ok/)

  snapshot.policy['no-proxy'] = {action: 'DENY', from: ['@agent-a'], name: 'no-proxy', ports: [], services: ['proxy'], sourceCidrs: []}
  await agents['agent-b']!.writeConfig(snapshot)
  await waitFor('the exit applied the policy', () => agents['agent-b']!.agent.configDump().policies.length === 1)
  const denied = await curl(['-x', `http://alice:s3cret@${proxy}`, `http://127.0.0.1:${web}/`])
  assert.match(denied.stdout, /refused: .*denied by policy "no-proxy"/)
})

test('garbage on the proxy port never crashes the agent', async (t) => {
  const web = await webServer(t)
  const {entry, proxy} = await proxyMesh(t, {'agent-b': {allow: [], exclusions: [], targets: ['127.0.0.0/8']}})
  const [host, port] = [proxy.slice(0, proxy.lastIndexOf(':')), Number(proxy.slice(proxy.lastIndexOf(':') + 1))]
  const payloads = [
    ...Array.from({length: 200}, () => randomBytes(1 + Math.floor(Math.random() * 600))),
    Buffer.from([5, 255, ...randomBytes(300)]), Buffer.from([5, 1, 0, 5, 1, 0, 9]), Buffer.from([5, 1, 0, 5, 1, 0, 3, 200, 1, 2]), Buffer.from([4, 1, 0, 80, 1, 2, 3, 4, 0]),
    Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.from('CONNECT nohost HTTP/1.1\r\n\r\n'), Buffer.from(`POST http://x/ HTTP/1.1\r\n${'A'.repeat(20_000)}`),
    Buffer.from('CONNECT [::1 HTTP/1.1\r\n\r\n'), Buffer.from('GET http://127.0.0.1:99999/ HTTP/1.1\r\n\r\n'),
  ]
  await Promise.all(payloads.map((payload) => new Promise<void>((resolve) => {
    const socket = connect({host, port})
    socket.on('error', () => resolve())
    socket.on('close', () => resolve())
    socket.on('data', () => {})
    socket.once('connect', () => socket.end(payload))
    setTimeout(() => socket.destroy(), 3000).unref()
  })))
  // Silent clients: they hold a handshake slot only until the deadline (not measured here: 10 s).
  const result = await curl(['-x', `http://${proxy}`, `http://127.0.0.1:${web}/still`])
  assert.match(result.stdout, /hello from \/still/)
  assert.equal(entry.agent.configDump().ready, true)
})

// Two real agents in-process, real mTLS on 127.0.0.1: the inbound → HBONE → outbound path, on each data
// path (native: the C addon; node: node:http2) — the same tests, the same expectations.
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {connect, createServer, type Socket} from 'node:net'
import {connect as tlsConnect} from 'node:tls'
import {describe, test, type TestContext} from 'node:test'

import type {DataPathChoice} from '../../src/lib/proxy/daemon/agent.js'
import {HboneEngine} from '../../src/lib/proxy/hbone/hbone-engine.js'

import {
  createMesh, deadPort, dial, echoServer, echoTunnel, httpGet, roundTrip, serialOf, sha256, startAgent, tempDir, tunnelConfig, waitFor,
} from './helpers.js'

/** The agent closed the connection: a FIN ('end') or a reset ('close'). */
const endedOrClosed = (socket: Socket): Promise<unknown> => new Promise((resolve) => {
  socket.once('end', resolve)
  socket.once('close', resolve)
})

async function twoAgents(t: TestContext, dataPath: DataPathChoice, targets?: {host: string; port: number; weight?: number}[]) {
  const pair = await echoTunnel(t, {extra: {dataPath}, targets})
  assert.match(pair.listen, /^127\.0\.0\.1:\d+$/)
  assert.equal(pair.clientAgent.agent.configDump().config.dataPath, dataPath)
  return pair
}

for (const dataPath of ['native', 'node'] as const) {
  describe(`the ${dataPath} data path`, () => {
    test('3 MB through inbound → outbound arrive byte-identical, with access logs and metrics on both sides', async (t) => {
      const {clientAgent, listen, serverAgent} = await twoAgents(t, dataPath)
      const data = randomBytes(3 * 1024 * 1024)
      const echoed = await roundTrip(listen, data)
      assert.equal(echoed.length, data.length)
      assert.equal(sha256(echoed), sha256(data))

      const outboundLine = await waitFor('the source access log', () => clientAgent.logs.find((line) => line.message === 'connection complete' && line.direction === 'outbound'))
      assert.equal(outboundLine.bytes_sent, data.length)
      assert.equal(outboundLine.bytes_recv, data.length)
      assert.equal(outboundLine['dst.service'], 'tcp/echo')
      assert.equal(outboundLine['dst.identity'], 'spiffe://test.mesh/identity/agent-b')
      assert.equal(outboundLine.level, 'info')
      const inboundLine = await waitFor('the destination access log', () => serverAgent.logs.find((line) => line.message === 'connection complete' && line.direction === 'inbound'))
      assert.equal(inboundLine['src.identity'], 'spiffe://test.mesh/identity/agent-a')

      const metrics = await httpGet(`http://${serverAgent.agent.addresses.metrics}/stats/prometheus`)
      assert.equal(metrics.status, 200)
      assert.match(metrics.body, /istio_tcp_received_bytes_total\{reporter="destination",source_workload="agent-a",.*destination_service="tcp\/echo".*response_flags="-",connection_security_policy="mutual_tls"\} 3145728/)
      assert.equal(clientAgent.agent.metrics.total('closed', {reporter: 'source'}), 1)
    })

    test('half-close works both ways: each side keeps sending after the other side’s FIN', async (t) => {
      const dir = await tempDir(t)
      const mesh = await createMesh()
      const [client, server] = await Promise.all([mesh.identity('agent-a'), mesh.identity('agent-b')])
      // A target that answers only after the client's FIN, then half-closes itself first and reads on.
      const target = createServer({allowHalfOpen: true}, (socket) => {
        const chunks: Buffer[] = []
        socket.on('data', (chunk: Buffer) => chunks.push(chunk))
        socket.on('end', () => socket.end(`got ${Buffer.concat(chunks).toString()}`))
      })
      await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve))
      t.after(() => target.close())
      const port = (target.address() as {port: number}).port
      const serverAgent = await startAgent(t, dir, server, tunnelConfig({client, server, serverHbone: '127.0.0.1:1', targets: [{host: '127.0.0.1', port}]}), {dataPath})
      const clientAgent = await startAgent(t, dir, client, tunnelConfig({client, server, serverHbone: serverAgent.agent.addresses.hbone, targets: [{host: '127.0.0.1', port}]}), {dataPath})
      const reply = await roundTrip(clientAgent.agent.addresses.inbound['tcp/echo@agent-a'], Buffer.from('hello'))
      assert.equal(reply.toString(), 'got hello')

      // Target closes its side first; the client can still send afterwards.
      const early = createServer({allowHalfOpen: true}, (socket) => {
        const chunks: Buffer[] = []
        socket.end('bye-first')
        socket.on('data', (chunk: Buffer) => chunks.push(chunk))
        socket.on('end', () => {
          earlyReceived = Buffer.concat(chunks).toString()
          socket.destroy()
        })
      })
      let earlyReceived = ''
      await new Promise<void>((resolve) => early.listen(0, '127.0.0.1', resolve))
      t.after(() => early.close())
      const earlyPort = (early.address() as {port: number}).port
      const config = tunnelConfig({client, server, serverHbone: serverAgent.agent.addresses.hbone, targets: [{host: '127.0.0.1', port: earlyPort}]})
      await serverAgent.writeConfig(config)
      await clientAgent.writeConfig(config)
      await waitFor('the new target applied', () => serverAgent.agent.configDump().services[0]?.endpoints[0]?.target === `127.0.0.1:${earlyPort}`)
      await waitFor('the new target on the client', () => clientAgent.agent.configDump().services[0]?.endpoints[0]?.target === `127.0.0.1:${earlyPort}`)
      const socket = await dial(clientAgent.agent.addresses.inbound['tcp/echo@agent-a'])
      const got: Buffer[] = []
      socket.on('data', (chunk: Buffer) => got.push(chunk))
      await new Promise((resolve) => socket.once('end', resolve))
      assert.equal(Buffer.concat(got).toString(), 'bye-first')
      socket.end('after-their-fin')
      await waitFor('the target to read what was sent after its FIN', () => earlyReceived === 'after-their-fin')
      socket.destroy()
    })

    test('a policy deny is refused with 401, a log line and response_flags="DENY"; a policy added later closes a live connection', async (t) => {
      const {clientAgent, config, listen, serverAgent} = await twoAgents(t, dataPath)
      // A live connection first.
      const live = await dial(listen)
      live.write('ping')
      await new Promise((resolve) => live.once('data', resolve))
      const liveClosed = endedOrClosed(live)
      live.on('error', () => {})

      config.policy['no-a'] = {action: 'DENY', from: ['@agent-a'], name: 'no-a', ports: [], services: [], sourceCidrs: []}
      await serverAgent.writeConfig(config)
      await liveClosed
      const lateLine = await waitFor('the policy-change log line', () => serverAgent.logs.find((line) => line.error === 'connection closed due to policy change'))
      assert.equal(lateLine['src.identity'], 'spiffe://test.mesh/identity/agent-a')

      const echoed = await roundTrip(listen, Buffer.from('denied?')).catch(() => Buffer.alloc(0))
      assert.equal(echoed.length, 0)
      const denyLine = await waitFor('the deny log line', () => serverAgent.logs.find((line) => typeof line.error === 'string' && line.error.includes('denied by policy "no-a"')))
      assert.equal(denyLine.level, 'error')
      const clientLine = await waitFor('the source-side refusal', () => clientAgent.logs.find((line) => line.message === 'connection complete' && typeof line.error === 'string' && line.error.startsWith('http status: 401')))
      assert.equal(clientLine.direction, 'outbound')
      const metrics = await httpGet(`http://${serverAgent.agent.addresses.metrics}/metrics`)
      assert.match(metrics.body, /istio_tcp_connections_failed_total\{reporter="destination",.*response_flags="DENY".*\} [12]/)
    })

    test('revoking the source identity closes its live connections within seconds and refuses new ones', async (t) => {
      const {client, config, listen, serverAgent} = await twoAgents(t, dataPath)
      const live = await dial(listen)
      live.on('error', () => {})
      live.write('x')
      await new Promise((resolve) => live.once('data', resolve))
      const closed = endedOrClosed(live)
      const started = Date.now()
      config.revocation[serialOf(client)] = {identity: client.name, notAfter: new Date(Date.now() + 3_600_000).toISOString(), serial: serialOf(client), spiffe: client.spiffe}
      await serverAgent.writeConfig(config)
      await closed
      assert.ok(Date.now() - started < 3000, 'closed within seconds')
      await waitFor('the revocation log line', () => serverAgent.logs.find((line) => line.error === 'connection closed: peer certificate revoked'))
      const echoed = await roundTrip(listen, Buffer.from('again')).catch(() => Buffer.alloc(0))
      assert.equal(echoed.length, 0)
      await waitFor('a CERT_REVOKED metric', () => serverAgent.agent.metrics.total('failed', {responseFlags: 'CERT_REVOKED'}) >= 1)
    })

    test('fails over to the second endpoint when the first target refuses', async (t) => {
      const dead = await deadPort()
      const echo = await echoServer(t)
      // Weight the dead target heavily so most picks try it first.
      const {clientAgent, listen, serverAgent} = await twoAgents(t, dataPath, [{host: '127.0.0.1', port: dead, weight: 1000}, {host: '127.0.0.1', port: echo.port, weight: 1}])
      for (let attempt = 0; attempt < 5; attempt++) {
        const echoed = await roundTrip(listen, Buffer.from(`attempt ${attempt}`))
        assert.equal(echoed.toString(), `attempt ${attempt}`)
      }

      assert.ok(serverAgent.logs.some((line) => typeof line.error === 'string' && line.error.includes('connection refused dialling target')))
      assert.ok(serverAgent.agent.metrics.total('failed', {responseFlags: 'CONNECT'}) >= 1)
      assert.equal(clientAgent.agent.metrics.total('closed', {reporter: 'source', responseFlags: '-'}), 5)
    })

    test('1,000 concurrent connections move checksummed data without loss or corruption', async (t) => {
      const {clientAgent, listen} = await twoAgents(t, dataPath)
      const count = 1000
      const results = await Promise.all(Array.from({length: count}, async (_, index) => {
        const data = randomBytes(4096 + (index % 7) * 1000)
        const echoed = await roundTrip(listen, data)
        return sha256(echoed) === sha256(data)
      }))
      assert.equal(results.filter(Boolean).length, count)
      await waitFor('every connection accounted for', () => clientAgent.agent.metrics.total('closed', {reporter: 'source'}) === count, 10_000)
      // ≤ 100 streams per HBONE session: the pool opened several sessions, not one per connection.
      assert.equal(clientAgent.agent.metrics.total('failed'), 0)
      // Every tunnel the addon held is gone once its connection closed (no leak on either side).
      if (dataPath === 'native') await waitFor('no native tunnel left', () => HboneEngine.get().stats().tunnels === 0, 10_000)
    })

    test('the agent serves only its own targets (never an open relay) and /config_dump shows its state', async (t) => {
      const {clientAgent, config, listen, serverAgent} = await twoAgents(t, dataPath)
      // Point the client at a target the server does not host: the server must refuse with 400.
      const elsewhere = await echoServer(t)
      const forged = structuredClone(config)
      forged.outbound['tcp/echo@agent-b'].targets = [{host: '127.0.0.1', port: elsewhere.port}]
      await clientAgent.writeConfig(forged)
      await waitFor('the forged config', () => clientAgent.agent.configDump().services[0]?.endpoints[0]?.target === `127.0.0.1:${elsewhere.port}`)
      const echoed = await roundTrip(listen, Buffer.from('relay me')).catch(() => Buffer.alloc(0))
      assert.equal(echoed.length, 0)
      await waitFor('the refusal log line', () => serverAgent.logs.find((line) => typeof line.error === 'string' && line.error.includes('not a target of any tunnel this agent hosts')))

      const dump = await httpGet(`http://${serverAgent.agent.addresses.admin}/config_dump`)
      const parsed = JSON.parse(dump.body) as Record<string, unknown>
      for (const key of ['workloads', 'services', 'policies', 'certificates', 'connections', 'config', 'version']) assert.ok(key in parsed, key)
      const ready = await httpGet(`http://${serverAgent.agent.addresses.readiness}/healthz/ready`)
      assert.deepEqual(ready, {body: 'ready\n', status: 200})
      const logging = await httpGet(`http://${serverAgent.agent.addresses.admin}/logging?level=warn`, 'POST')
      assert.equal(logging.body, 'current log level is warn\n')
      assert.equal((await httpGet(`http://${serverAgent.agent.addresses.admin}/nope`)).status, 404)
    })

    test('garbage on the HBONE port never crashes the agent', async (t) => {
      const {client, listen, serverAgent} = await twoAgents(t, dataPath)
      const [host, port] = serverAgent.agent.addresses.hbone.split(':')
      // Send PAYLOAD once SOCKET is ready (EVENT), then wait (bounded) for the agent to close it.
      const sendAndWait = async (socket: Socket, event: 'connect' | 'secureConnect', payload: Buffer): Promise<void> => {
        socket.on('error', () => {})
        await new Promise((resolve) => socket.once(event, resolve))
        socket.end(payload)
        await new Promise((resolve) => {
          socket.once('close', resolve)
          setTimeout(resolve, 2000).unref()
        })
        socket.destroy()
      }

      const junk = (payload: Buffer): Promise<void> => sendAndWait(connect({host, port: Number(port)}), 'connect', payload)
      await junk(randomBytes(4096))
      await junk(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + 'garbage'.repeat(100)))
      await junk(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
      // Past a valid mutual-TLS handshake: junk instead of HTTP/2, a frame claiming 16 MiB, HPACK garbage, a window overflow.
      const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
      const frame = (type: number, flags: number, stream: number, payload: Buffer, length = payload.length): Buffer => {
        const header = Buffer.alloc(9)
        header.writeUIntBE(length, 0, 3)
        header.writeUInt8(type, 3)
        header.writeUInt8(flags, 4)
        header.writeUInt32BE(stream, 5)
        return Buffer.concat([header, payload])
      }

      const tlsJunk = (payload: Buffer): Promise<void> =>
        sendAndWait(tlsConnect({ALPNProtocols: ['h2'], ca: client.ca, cert: client.cert, checkServerIdentity: () => undefined, host, key: client.key, port: Number(port)}), 'secureConnect', payload)

      await tlsJunk(randomBytes(4096))
      await tlsJunk(Buffer.concat([preface, frame(0, 0, 1, randomBytes(64), 0xff_ffff)]))
      await tlsJunk(Buffer.concat([preface, frame(4, 0, 0, Buffer.alloc(0)), frame(1, 5, 1, randomBytes(200)), frame(0, 1, 3, randomBytes(100))]))
      await tlsJunk(Buffer.concat([preface, frame(4, 0, 0, Buffer.alloc(0)), frame(8, 0, 0, Buffer.from([0x7f, 0xff, 0xff, 0xff])), frame(8, 0, 0, Buffer.from([0x7f, 0xff, 0xff, 0xff]))]))
      // Still serving.
      const echoed = await roundTrip(listen, Buffer.from('still alive'))
      assert.equal(echoed.toString(), 'still alive')
      assert.ok(serverAgent.logs.some((line) => line.message === 'connection failed'))
    })
  })
}

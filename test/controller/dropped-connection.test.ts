// A controller killed (kill -9) between a CLI's request and the controller's response: the command must
// fail with ZT_ERR_CONTROLLER_UNREACHABLE (exit 5), never read the silence as success. To land the kill
// in exactly that gap, the CLI talks to the controller through a TCP relay written for the test: it passes
// the TLS handshake through, then holds every byte the controller sends back once the client has sent its
// request, so the controller's answer can never arrive; then the controller process is killed.
import assert from 'node:assert/strict'
import {type AddressInfo, connect, createServer, type Socket} from 'node:net'
import {test} from 'node:test'

import {upsertContext} from '../../src/lib/home/contexts.js'
import {startTestController, type TestController} from '../helpers/controller.js'

interface HoldingRelay {
  port: number
  /** resolves once the client sent its request and the relay holds the controller's answer back */
  requestSent: Promise<{clientBytes: number}>
  close(): void
}

/**
 * Relay connections to TARGET_PORT. The client speaks first (ClientHello), the server answers with its
 * whole handshake flight; whatever the client sends after that (Finished, the HTTP/2 preface and request)
 * passes, but nothing more from the server does. The request counts as sent once the client has been
 * quiet for 300 ms.
 */
async function holdingRelay(targetPort: number): Promise<HoldingRelay> {
  const sockets = new Set<Socket>()
  let announce: (value: {clientBytes: number}) => void = () => {}
  const requestSent = new Promise<{clientBytes: number}>((resolve) => (announce = resolve))
  const server = createServer((client) => {
    const upstream = connect({host: '127.0.0.1', port: targetPort})
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('error', () => {})
    }

    let serverSpoke = false
    let clientBytes = 0
    let holding = false
    let quiet: NodeJS.Timeout | undefined
    client.on('data', (chunk: Buffer) => {
      clientBytes += chunk.length
      if (serverSpoke) holding = true
      upstream.write(chunk)
      if (holding) {
        clearTimeout(quiet)
        quiet = setTimeout(() => announce({clientBytes}), 300)
      }
    })
    upstream.on('data', (chunk: Buffer) => {
      serverSpoke = true
      if (!holding) client.write(chunk)
    })
    // The controller died: the client's connection ends without an answer.
    upstream.on('close', () => client.destroy())
    client.on('close', () => upstream.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    requestSent,
    close() {
      server.close()
      for (const socket of sockets) socket.destroy()
    },
  }
}

async function killBetweenRequestAndResponse(t: {after(fn: () => void): void}, ctl: TestController, args: string[]) {
  const relay = await holdingRelay(ctl.port)
  t.after(() => relay.close())
  await upsertContext({configDir: ctl.home, dataDir: ctl.home}, {controller: `https://127.0.0.1:${relay.port}`, identity: ctl.adminIdentityPath, name: 'via-relay'}, false)
  const command = ctl.run([...args, '--context', 'via-relay'], {timeoutMs: 30_000})
  const {clientBytes} = await relay.requestSent
  await ctl.kill9()
  const result = await command
  return {clientBytes, result}
}

test('a controller killed between request and response gives exit 5, not a TypeError', async (t) => {
  await t.test('identity list', async (tt) => {
    const ctl = await startTestController(tt)
    const {clientBytes, result} = await killBetweenRequestAndResponse(tt, ctl, ['identity', 'list'])
    // ClientHello is ~300 bytes; the second burst (Finished + preface + SETTINGS + HEADERS) brings it past 400.
    assert.ok(clientBytes > 400, `the client sent its request (${clientBytes} bytes)`)
    assert.equal(result.code, 5, result.stderr)
    assert.match(result.stderr, /ZT_ERR_CONTROLLER_UNREACHABLE/)
    assert.match(result.stderr, /closed before the controller answered GET \/v1\/identities/)
    assert.doesNotMatch(result.stderr, /TypeError|Internal error|\n\s+at /, 'no bug report, no stack')
  })

  await t.test('tunnel open checks the agent identity first: that check fails too, it does not pass silently', async (tt) => {
    const ctl = await startTestController(tt)
    const {result} = await killBetweenRequestAndResponse(tt, ctl, ['tunnel', 'open', 'outbound', 'tcp/web', '--agent', 'agent-b', '--target', '127.0.0.1:8080'])
    assert.equal(result.code, 5, result.stderr)
    assert.match(result.stderr, /ZT_ERR_CONTROLLER_UNREACHABLE/)
    assert.match(result.stderr, /GET \/v1\/identities\/agent-b/)
  })
})

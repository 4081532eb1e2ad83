// The wire format against independent peers: Debian's hyper-h2 (python3-h2) as an HBONE client, and
// a certificate from a foreign CA.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {test, type TestContext} from 'node:test'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

import {requirePackages} from '../helpers/tools.js'
import {createMesh, echoServer, roundTrip, startAgent, tempDir, tunnelConfig, waitFor} from './helpers.js'

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'hbone_client.py')
const run = promisify(execFile)

async function hostedEcho(t: TestContext) {
  requirePackages('python3', 'python3-h2')
  const dir = await tempDir(t)
  const mesh = await createMesh()
  const [client, server] = await Promise.all([mesh.identity('python-client'), mesh.identity('agent-b')])
  const echo = await echoServer(t)
  const targets = [{host: '127.0.0.1', port: echo.port}]
  const serverAgent = await startAgent(t, dir, server, tunnelConfig({client, server, serverHbone: '127.0.0.1:1', targets}))
  const files = {ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'client.pem'), key: path.join(dir, 'client.key')}
  await Promise.all([writeFile(files.ca, client.ca), writeFile(files.cert, client.cert), writeFile(files.key, client.key)])
  const [host, port] = serverAgent.agent.addresses.hbone.split(':')
  return {client, dir, echo, files, host, mesh, port, server, serverAgent, targets}
}

test('hyper-h2 with a valid mesh certificate gets 200 and its bytes echoed', async (t) => {
  const {echo, files, host, port, serverAgent} = await hostedEcho(t)
  const {stdout} = await run('/usr/bin/python3', [SCRIPT, host, port, `127.0.0.1:${echo.port}`, files.ca, files.cert, files.key], {timeout: 20_000})
  assert.match(stdout, /^STATUS 200$/m)
  assert.match(stdout, /^BODY interop-ping$/m)
  const line = await waitFor('the access log', () => serverAgent.logs.find((entry) => entry.message === 'connection complete' && entry['src.identity'] === 'spiffe://test.mesh/identity/python-client'))
  assert.equal(line.bytes_recv, 'interop-ping'.length)
})

test('hyper-h2 without a client certificate is refused at the TLS layer, with a log line and a TLS_FAILURE metric', async (t) => {
  const {echo, files, host, port, serverAgent} = await hostedEcho(t)
  const {stdout} = await run('/usr/bin/python3', [SCRIPT, host, port, `127.0.0.1:${echo.port}`, files.ca], {timeout: 20_000})
  assert.doesNotMatch(stdout, /STATUS 200/)
  assert.match(stdout, /REFUSED/)
  await waitFor('the TLS failure log line', () => serverAgent.logs.find((entry) => entry.message === 'connection failed' && String(entry.error).startsWith('TLS handshake failed')))
  assert.ok(serverAgent.agent.metrics.total('failed', {responseFlags: 'TLS_FAILURE'}) >= 1)
})

test('hyper-h2 asking for a target the agent does not serve, or sending a bad :authority, gets 400', async (t) => {
  const {echo, files, host, port, serverAgent} = await hostedEcho(t)
  for (const authority of ['127.0.0.1:22', 'host-without-port', '[::1', `127.0.0.1:${echo.port}0000`]) {
    const {stdout} = await run('/usr/bin/python3', [SCRIPT, host, port, authority, files.ca, files.cert, files.key], {timeout: 20_000})
    assert.match(stdout, /^STATUS 400$/m, authority)
  }

  // Characters HTTP/2 forbids in a header value: nghttp2 resets the stream before our handler runs.
  const {stdout} = await run('/usr/bin/python3', [SCRIPT, host, port, 'not an\x01authority', files.ca, files.cert, files.key], {timeout: 20_000})
  assert.doesNotMatch(stdout, /STATUS 200/)

  assert.ok(serverAgent.logs.some((entry) => String(entry.error).startsWith('bad :authority')))
  assert.ok(serverAgent.logs.some((entry) => String(entry.error).includes('not a target of any tunnel this agent hosts')))
})

test('an agent whose certificate comes from a foreign CA is refused, and says so in its log and metrics', async (t) => {
  const {dir, server, serverAgent, targets} = await hostedEcho(t)
  const foreign = await (await createMesh()).identity('agent-a')
  const foreignAgent = await startAgent(t, dir, foreign, tunnelConfig({client: foreign, server, serverHbone: serverAgent.agent.addresses.hbone, targets}))
  const echoed = await roundTrip(foreignAgent.agent.addresses.inbound['tcp/echo@agent-a'], Buffer.from('let me in')).catch(() => Buffer.alloc(0))
  assert.equal(echoed.length, 0)
  // Each side reports the failed handshake in its own words.
  const clientLine = await waitFor('the source-side failure', () => foreignAgent.logs.find((entry) => entry.message === 'connection complete' && entry.level === 'error'))
  assert.match(String(clientLine.error), /TLS handshake with .* failed|certificate/)
  await waitFor('the destination-side failure', () => serverAgent.logs.find((entry) => entry.message === 'connection failed'))
  assert.ok(serverAgent.agent.metrics.total('failed', {responseFlags: 'TLS_FAILURE'}) >= 1)
})

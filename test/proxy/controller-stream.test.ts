// Agents configured by a real controller (in-process, real TLS, real SQLite): tunnels opened through
// the API reach both agents; with the controller stopped, existing and new connections still work.
import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {PassThrough} from 'node:stream'
import {test, type TestContext} from 'node:test'

import {ControllerClient} from '../../src/lib/client/controller-client.js'
import {enroll} from '../../src/lib/client/enroll.js'
import {startController} from '../../src/lib/controller/controller.js'
import {readIdentityFile} from '../../src/lib/identity/file.js'
import {runAgent} from '../../src/lib/proxy/daemon/agent.js'
import {ControllerConfigSource} from '../../src/lib/proxy/state/config-source-controller.js'
import {dial, echoServer, roundTrip, tempDir, waitFor} from './helpers.js'

async function enrolledAgent(t: TestContext, admin: ControllerClient, dir: string, name: string) {
  const {jwt} = await admin.request<{jwt: string}>('POST', '/v1/identities', {expiresInSeconds: 600, name, roles: ['agent']})
  const jwtPath = path.join(dir, `${name}.jwt`)
  await writeFile(jwtPath, jwt)
  const {identityPath} = await enroll({jwtPath, out: path.join(dir, `${name}.json`)})
  const identity = await readIdentityFile(identityPath)
  const agent = await runAgent({
    buildVersion: 'test',
    configSource: new ControllerConfigSource(identity),
    drainTimeoutMs: 1000,
    hbone: '127.0.0.1:0',
    identity,
    logDestination: new PassThrough().resume(),
    logLevel: 'warn',
  })
  t.after(() => agent.shutdown('test over'))
  return agent
}

test('tunnels configured through the controller work, and keep working (new connections too) with the controller stopped', async (t) => {
  const dir = await tempDir(t)
  const controller = await startController({home: {configDir: dir, dataDir: dir}, listen: '127.0.0.1:0', trustDomain: 'test.mesh', version: 'test'})
  let controllerStopped = false
  t.after(async () => {
    if (!controllerStopped) await controller.close()
  })
  const admin = ControllerClient.fromIdentity(await readIdentityFile(controller.adminIdentityPath))
  t.after(() => admin.close())
  const echo = await echoServer(t)
  const [client, server] = [await enrolledAgent(t, admin, dir, 'agent-a'), await enrolledAgent(t, admin, dir, 'agent-b')]

  await admin.request('PUT', `/v1/resources/outbound/${encodeURIComponent('tcp/echo@agent-b')}`, {agent: 'agent-b', allow: [], service: 'tcp/echo', targets: [{host: '127.0.0.1', port: echo.port}]})
  await admin.request('PUT', `/v1/resources/inbound/${encodeURIComponent('tcp/echo@agent-a')}`, {agent: 'agent-a', listen: '127.0.0.1:0', service: 'tcp/echo'})
  const listen = await waitFor('the inbound listener', () => client.addresses.inbound['tcp/echo@agent-a'], 5000)
  await waitFor('the endpoint on agent-a', () => client.configDump().services.find((service) => service.name === 'tcp/echo')?.endpoints.length, 5000)
  await waitFor('the hosted tunnel on agent-b', () => server.configDump().services.find((service) => service.name === 'tcp/echo')?.hostedHere, 5000)
  assert.equal((await roundTrip(listen, Buffer.from('via controller'))).toString(), 'via controller')

  // An established connection, then the controller goes away.
  const live = await dial(listen)
  live.write('one')
  await new Promise((resolve) => live.once('data', resolve))
  await controller.close()
  controllerStopped = true
  await waitFor('agent-a to notice', () => !client.configDump().config.source.connected, 5000)

  const more: Buffer[] = []
  live.on('data', (chunk: Buffer) => more.push(chunk))
  live.end('two')
  await new Promise((resolve) => live.once('end', resolve))
  assert.equal(Buffer.concat(more).toString(), 'two')
  live.destroy()
  assert.equal((await roundTrip(listen, Buffer.from('new while the controller is down'))).toString(), 'new while the controller is down')
})

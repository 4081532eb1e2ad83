// A daemon whose identity file is a Secret volume takes the certificate the kubelet puts there: the file
// lives in a directory laid out as the kubelet's atomic writer does (identity.json → ..data/identity.json,
// ..data → a timestamped directory, swapped by renaming ..data_tmp over ..data), certificates come from a
// real mesh CA, and a real TLS handshake reads what the hub (and an agent, on both data paths) serves.
// A half-written file, another identity, another CA, a key that does not fit and an expired certificate
// are each logged and ignored; a good one is served within seconds while a live relayed stream through
// the hub keeps running and its agents stay attached on their first sessions.
import assert from 'node:assert/strict'
import {mkdir, rename, rm, symlink, writeFile} from 'node:fs/promises'
import type {Socket} from 'node:net'
import path from 'node:path'
import {test, type TestContext} from 'node:test'

import {emptySnapshot} from '../../src/lib/config/types.js'
import type {IdentityFile} from '../../src/lib/identity/file.js'
import {runHub} from '../../src/lib/proxy/daemon/hub.js'
import {StaticConfigSource} from '../../src/lib/proxy/state/config-source.js'
import {servedCertificate} from '../helpers/tls-probe.js'
import {createMesh, dial, echoServer, jsonLogSink, serialOf, startAgent, tempDir, tunnelConfig, waitFor} from './helpers.js'

/** A Secret volume as the kubelet writes it; publish() is its atomic update. */
async function secretVolume(dir: string, first: string): Promise<{file: string; publish(text: string): Promise<void>}> {
  let generation = 0
  let current: string | undefined
  const publish = async (text: string): Promise<void> => {
    const next = `..2026_12_02_00_00_00.${++generation}`
    await mkdir(path.join(dir, next))
    await writeFile(path.join(dir, next, 'identity.json'), text, {mode: 0o444})
    await symlink(next, path.join(dir, '..data_tmp'))
    await rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'))
    if (current) await rm(path.join(dir, current), {force: true, recursive: true})
    current = next
  }

  await publish(first)
  await symlink('..data/identity.json', path.join(dir, 'identity.json'))
  return {file: path.join(dir, 'identity.json'), publish}
}

const text = (identity: IdentityFile): string => JSON.stringify(identity, null, 2) + '\n'
const served = async (address: string, client: IdentityFile): Promise<string> => (await servedCertificate(address, client)).serial.toUpperCase()

/** Write DATA on a live connection and read the same number of bytes back. */
async function echoOn(socket: Socket, data: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = []
  let length = 0
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      length += chunk.length
      if (length < data.length) return
      socket.off('data', onData)
      resolve(Buffer.concat(chunks))
    }

    socket.on('data', onData)
    socket.once('error', reject)
    socket.write(data)
  })
}

test('a hub takes the certificate the kubelet swaps into its Secret volume, ignores unusable ones, keeps live streams', async (t) => {
  const dir = await tempDir(t)
  const mesh = await createMesh()
  const [a, b, hubIdentity] = await Promise.all([mesh.identity('agent-a'), mesh.identity('agent-b'), mesh.identity('hub-1')])
  // Made first: expired by the time it is published.
  const expired = await mesh.identity('hub-1', 1)
  const echo = await echoServer(t)
  const snapshot = tunnelConfig({client: a, server: b, serverHbone: '', targets: [{host: '127.0.0.1', port: echo.port}]})
  snapshot.agent['agent-a'] = {hbone: '', name: 'agent-a', spiffe: a.spiffe}
  snapshot.identity['hub-1'] = {name: 'hub-1', roles: ['hub'], spiffe: hubIdentity.spiffe}
  const configFile = path.join(dir, 'hub.config.json')
  await writeFile(configFile, JSON.stringify(snapshot))

  const volume = await secretVolume(await mkdirIn(dir, 'hub-identity'), text(hubIdentity))
  const {destination, logs} = jsonLogSink()
  const hub = await runHub({
    admin: '127.0.0.1:0', configSource: new StaticConfigSource(configFile), drainTimeoutMs: 500, identity: hubIdentity, identityFile: volume.file,
    keepaliveIntervalMs: 500, keepaliveTimeoutMs: 2000, listen: '127.0.0.1:0', logDestination: destination, logLevel: 'debug',
  })
  t.after(() => hub.shutdown('test over'))
  await hub.ready
  const address = hub.addresses.listen
  await startAgent(t, dir, b, snapshot, {admin: `unix:${path.join(dir, 'b.sock')}`, dataPath: 'native', hubs: [`hub-1@${address}`], noListen: true})
  const agentA = await startAgent(t, dir, a, snapshot, {dataPath: 'native', hubs: [`hub-1@${address}`]})
  await agentA.agent.ready
  await waitFor('both agents attached', () => hub.status().agents.filter((agent) => agent.standby > 0).length === 2)
  const attachedAt = hub.status().agents.map((agent) => `${agent.name}@${agent.connectedAt}`).sort()
  assert.equal(await served(address, a), serialOf(hubIdentity))

  // A stream relayed through the hub, open across every swap below.
  const live = await dial(agentA.agent.addresses.inbound['tcp/echo@agent-a']!)
  t.after(() => live.destroy())
  assert.equal((await echoOn(live, Buffer.from('before'))).toString(), 'before')

  const otherMesh = await createMesh()
  const [otherIdentity, otherCa, misfit] = await Promise.all([mesh.identity('hub-2'), otherMesh.identity('hub-1'), mesh.identity('hub-1')])
  const unusable: [string, string, RegExp][] = [
    ['half-written', text(misfit).slice(0, 200), /invalid JSON/],
    ['another identity', text(otherIdentity), /is the identity spiffe:\/\/test\.mesh\/identity\/hub-2, not spiffe:\/\/test\.mesh\/identity\/hub-1/],
    ['another CA', text(otherCa), /not signed by the mesh CA this process trusts/],
    ['a key that does not fit', text({...misfit, key: otherIdentity.key}), /the key does not belong to certificate/],
    ['an expired certificate', text(expired), /is not valid now/],
  ]
  for (const [what, content, reason] of unusable) {
    const before = logs.length
    await volume.publish(content)
    const warned = await waitFor(`the hub logs ${what} as unusable`, () => logs.slice(before).find((line) => line.message === 'identity file changed but is not usable; keeping the current certificate'))
    assert.match(String(warned.reason), reason, what)
    assert.equal(await served(address, a), serialOf(hubIdentity), `still the first certificate after ${what}`)
  }

  const renewed = await mesh.identity('hub-1')
  const published = Date.now()
  await volume.publish(text(renewed))
  await waitFor('the hub serves the new certificate', async () => (await served(address, a)) === serialOf(renewed), 5000)
  const tookMs = Date.now() - published
  const reloaded = logs.find((line) => line.message === 'identity file reloaded: new connections present its certificate')
  assert.ok(reloaded, 'the reload is logged')
  assert.equal(reloaded.previous, serialOf(hubIdentity))
  assert.equal(reloaded.serial, serialOf(renewed))
  assert.ok(tookMs < 5000, `served within ${tookMs} ms`)

  // The live stream and the agents' sessions with the hub were not touched.
  assert.equal((await echoOn(live, Buffer.from('after the swap'))).toString(), 'after the swap')
  assert.deepEqual(hub.status().agents.map((agent) => `${agent.name}@${agent.connectedAt}`).sort(), attachedAt)
  // The same certificate again (the kubelet re-syncing) is no reload.
  await volume.publish(text(renewed))
  await new Promise((resolve) => setTimeout(resolve, 600))
  assert.equal(logs.filter((line) => String(line.message).startsWith('identity file reloaded')).length, 1)
})

for (const dataPath of ['native', 'node'] as const) {
  test(`an agent (${dataPath} data path) takes the certificate swapped into its Secret volume; /config_dump shows it`, async (t: TestContext) => {
    const dir = await tempDir(t)
    const mesh = await createMesh()
    const [client, identity] = await Promise.all([mesh.identity('client'), mesh.identity('host')])
    const snapshot = emptySnapshot()
    for (const each of [client, identity]) snapshot.identity[each.name] = {name: each.name, roles: [], spiffe: each.spiffe}
    const volume = await secretVolume(await mkdirIn(dir, 'host-identity'), text(identity))
    const running = await startAgent(t, dir, identity, snapshot, {dataPath, identityFile: volume.file})
    await running.agent.ready
    const address = running.agent.addresses.hbone
    assert.equal(await served(address, client), serialOf(identity))

    const renewed = await mesh.identity('host')
    await volume.publish(text(renewed))
    await waitFor('the agent serves the new certificate', async () => (await served(address, client)) === serialOf(renewed), 5000)
    const certificate = running.agent.configDump().certificates[0]!
    assert.equal(certificate.certChain[0]!.serialNumber, serialOf(renewed))
    assert.equal(certificate.storage, 'file')
  })
}

test('the renewer takes the reloaded certificate as its own: no renewal of the replaced one', async (t) => {
  const dir = await tempDir(t)
  const mesh = await createMesh()
  const issuedAt = Date.now()
  const [client, identity] = await Promise.all([mesh.identity('client'), mesh.identity('host', 20)])
  const snapshot = emptySnapshot()
  for (const each of [client, identity]) snapshot.identity[each.name] = {name: each.name, roles: [], spiffe: each.spiffe}
  const volume = await secretVolume(await mkdirIn(dir, 'host-identity'), text(identity))
  // What the controller's /v1/renew would answer, from the same CA; every call is recorded.
  const renewedFrom: string[] = []
  const renewIdentity = async (current: IdentityFile): Promise<IdentityFile> => {
    renewedFrom.push(serialOf(current))
    return mesh.identity('host')
  }

  const running = await startAgent(t, dir, identity, snapshot, {identityFile: volume.file, renewIdentity})
  await running.agent.ready
  const published = await mesh.identity('host')
  await volume.publish(text(published))
  await waitFor('the agent serves the published certificate', async () => (await served(running.agent.addresses.hbone, client)) === serialOf(published), 2500)
  assert.ok(Date.now() < issuedAt + 9000, 'swapped before the first certificate was due for renewal (10 s after it was issued)')
  // The published one is due at its half-life, an hour on: wait past the first one's due time.
  await new Promise((resolve) => setTimeout(resolve, issuedAt + 11_000 - Date.now()))
  assert.deepEqual(renewedFrom, [], 'nothing renewed the replaced certificate')
  assert.equal(await served(running.agent.addresses.hbone, client), serialOf(published))
})

async function mkdirIn(dir: string, name: string): Promise<string> {
  const made = path.join(dir, name)
  await mkdir(made)
  return made
}

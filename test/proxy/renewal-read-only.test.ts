// An agent whose identity file cannot be written (the host pod's Secret volume is mounted read-only)
// still renews: a real controller issues short certificates, the agent runs as a real process with its
// identity in a read-only bind mount, and a TLS client sees the served certificate change before the old
// one expires while the file's bytes stay the same.
import assert from 'node:assert/strict'
import {chmod, copyFile, mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'
import tls from 'node:tls'

import {type IdentityFile, readIdentityFile} from '../../src/lib/identity/file.js'
import {certInfo} from '../../src/lib/pki/cert-info.js'
import {spawnAgentProcess} from '../helpers/agent-process.js'
import {startTestController, type TestController} from '../helpers/controller.js'

const CERT_TTL = '10s'

async function enroll(ctl: TestController, name: string): Promise<string> {
  for (const args of [['identity', 'create', name, '-a', 'agent'], ['enroll', `${name}.jwt`, '--force']]) {
    const result = await ctl.run(args)
    assert.equal(result.code, 0, `ztctl ${args.join(' ')}: ${result.stderr}`)
  }

  return path.join(ctl.home, `${name}.json`)
}

/** The serial and expiry of the certificate ADDRESS serves over TLS (mutual, as an HBONE peer dials it). */
function servedCertificate(address: string, client: IdentityFile): Promise<{notAfter: number; serial: string}> {
  const colon = address.lastIndexOf(':')
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      ALPNProtocols: ['h2'], ca: client.ca, cert: client.cert, checkServerIdentity: () => undefined, host: address.slice(0, colon), key: client.key, port: Number(address.slice(colon + 1)),
    }, () => {
      const peer = socket.getPeerCertificate()
      socket.destroy()
      resolve({notAfter: Date.parse(peer.valid_to), serial: peer.serialNumber.toLowerCase()})
    })
    socket.setTimeout(5000, () => socket.destroy(new Error(`no TLS handshake with ${address} in 5 s`)))
    socket.once('error', reject)
  })
}

/** Polls the served certificate until its serial is not SERIAL; fails once DEADLINE passes. */
async function nextServed(address: string, client: IdentityFile, serial: string, deadline: number): Promise<{at: number; notAfter: number; serial: string}> {
  for (;;) {
    const served = await servedCertificate(address, client)
    const at = Date.now()
    if (served.serial !== serial) return {...served, at}
    assert.ok(at < deadline, `still serving ${serial} at ${new Date(at).toISOString()}, it expires ${new Date(deadline).toISOString()}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

test('an agent with a read-only identity file renews in memory: the served certificate changes before expiry, the file does not', async (t) => {
  assert.equal(process.getuid?.(), 0, 'runs as root: a read-only bind mount is the only file root cannot write (mode bits do not stop it)')
  const ctl = await startTestController(t, {extraArgs: ['--cert-ttl', CERT_TTL]})
  const client = await readIdentityFile(await enroll(ctl, 'client'))

  // The host pod's layout: identity.json in a directory mounted read-only (mode 0444 in a 0555 dir as well).
  const identityDir = await mkdtemp(path.join(tmpdir(), 'ztctl-ro-identity-'))
  const runDir = await mkdtemp(path.join(tmpdir(), 'ztctl-ro-run-'))
  t.after(() => Promise.all([rm(identityDir, {force: true, recursive: true}), rm(runDir, {force: true, recursive: true})]))
  const identityFile = path.join(identityDir, 'identity.json')
  await copyFile(await enroll(ctl, 'host'), identityFile)
  await chmod(identityFile, 0o444)
  await chmod(identityDir, 0o555)
  const bytes = await readFile(identityFile)
  const first = certInfo((await readIdentityFile(identityFile)).cert)

  // The bind mount lives in the agent's own mount namespace: it goes away with the process, also on failure.
  const readOnlyMount = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount --bind -o ro "$0" "$0" && exec "$@"', identityDir]
  const agent = await spawnAgentProcess(t, {identityFile, prefix: readOnlyMount, readyFile: path.join(runDir, 'ready.json')})
  const {hbone} = agent.ready.addresses
  const firstServed = await servedCertificate(hbone, client)
  assert.equal(firstServed.serial, first.serial.toLowerCase(), 'serves the certificate from the file at first')

  const renewalLog = () => agent.stdout().split('\n').filter((line) => line.includes('renew')).join('\n')
  const renewed = await nextServed(hbone, client, firstServed.serial, first.notAfter.getTime()).catch((error: Error) => assert.fail(`${error.message}; the agent's renewal log:\n${renewalLog()}`))
  assert.ok(renewed.at < first.notAfter.getTime(), 'renewed before the old certificate expired')
  assert.ok(renewed.notAfter > first.notAfter.getTime(), 'the new certificate outlives the old one')
  // A second renewal starts from the in-memory certificate (the file still holds the first, soon expired).
  const again = await nextServed(hbone, client, renewed.serial, renewed.notAfter).catch((error: Error) => assert.fail(`${error.message}; the agent's renewal log:\n${renewalLog()}`))
  assert.ok(again.at < renewed.notAfter, 'renewed again before the renewed certificate expired')

  assert.deepEqual(await readFile(identityFile), bytes, 'the identity file is unchanged')
  const logs = agent.stdout().split('\n').filter(Boolean).map((line) => JSON.parse(line) as {file?: string; message: string; storage?: string})
  const memoryOnly = logs.filter((line) => /in memory/.test(line.message))
  assert.equal(memoryOnly.length, 1, `said once that the renewed certificate is kept in memory: ${JSON.stringify(memoryOnly)}`)
  assert.equal(memoryOnly[0]!.file, identityFile)
  const renewals = logs.filter((line) => line.message === 'certificate renewed')
  assert.ok(renewals.length >= 2, 'each renewal logged')
  assert.deepEqual(new Set(renewals.map((line) => line.storage)), new Set(['memory']), 'each renewal says where it is kept')
  assert.equal(logs.filter((line) => /renewal failed/.test(line.message)).length, 0, 'no renewal failed')

  const dump = await fetch(`http://${agent.ready.addresses.admin}/config_dump`).then(async (response) => (await response.json()) as {certificates: {certChain: {serialNumber: string}[]; storage: string}[]})
  assert.equal(dump.certificates[0]!.storage, 'memory', 'the admin dump says where the certificate is kept')
  assert.equal(dump.certificates[0]!.certChain[0]!.serialNumber.toLowerCase(), (await servedCertificate(hbone, client)).serial)
})

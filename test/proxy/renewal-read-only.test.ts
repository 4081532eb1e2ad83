// An agent or a hub whose identity file cannot be written (the host pod's and the hub's Secret volumes
// are mounted read-only) still renews: a real controller issues short certificates, the daemon runs as a
// real process (`agent run` as the host pod runs it, `hub run`) with its identity in a read-only bind
// mount, and a TLS client sees the served certificate change before the old one expires, twice, while
// the file's bytes stay the same.
import {type ChildProcess, spawn} from 'node:child_process'
import assert from 'node:assert/strict'
import {chmod, copyFile, mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'

import {type IdentityFile, readIdentityFile} from '../../src/lib/identity/file.js'
import {certInfo} from '../../src/lib/pki/cert-info.js'
import {RUN_JS, startTestController, type TestController} from '../helpers/controller.js'
import {servedCertificate} from '../helpers/tls-probe.js'

const CERT_TTL = '10s'

async function enroll(ctl: TestController, name: string, role: string): Promise<string> {
  for (const args of [['identity', 'create', name, '-a', role], ['enroll', `${name}.jwt`, '--force']]) {
    const result = await ctl.run(args)
    assert.equal(result.code, 0, `ztctl ${args.join(' ')}: ${result.stderr}`)
  }

  return path.join(ctl.home, `${name}.json`)
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

interface Daemon {
  addresses: Record<string, string>
  stdout: () => string
}

/**
 * `ztctl ARGS` as a real process whose identity dir DIR is bind-mounted read-only in a mount namespace of
 * its own (gone with the process, also on failure; the PID stays the daemon's); ready once READY exists.
 */
async function spawnReadOnly(t: {after(fn: () => void): void}, dir: string, args: string[], readyFile: string): Promise<Daemon> {
  const child: ChildProcess = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind -o ro "$0" "$0" && exec "$@"', dir, process.execPath, RUN_JS, ...args, '--ready-file', readyFile], {stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk))
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk))
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const deadline = Date.now() + 20_000
  for (;;) {
    const ready = await readFile(readyFile, 'utf8').then((text) => JSON.parse(text) as {addresses: Record<string, string>}, () => undefined)
    if (ready) return {addresses: ready.addresses, stdout: () => stdout}
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${args.join(' ')} did not get ready (exit ${child.exitCode}): ${stderr}${stdout}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const loopback = '127.0.0.1:0'
const DAEMONS = [
  // The host pod's command line (src/lib/kube/manifest/host-pod.ts: -i, --controller, these listeners) on loopback.
  {args: ['agent', 'run', '--hbone', loopback, '--admin', loopback, '--metrics', loopback, '--readiness', loopback], name: 'host', role: 'agent', served: 'hbone'},
  {args: ['hub', 'run', '--listen', loopback, '--admin', loopback], name: 'hub-1', role: 'hub', served: 'listen'},
] as const

for (const daemon of DAEMONS) {
  test(`${daemon.args[0]} run with a read-only identity file renews in memory: the served certificate changes before expiry, the file does not`, async (t) => {
    assert.equal(process.getuid?.(), 0, 'runs as root: a read-only bind mount is the only file root cannot write (mode bits do not stop it)')
    const ctl = await startTestController(t, {extraArgs: ['--cert-ttl', CERT_TTL]})
    const client = await readIdentityFile(await enroll(ctl, 'client', 'agent'))

    // The pod's layout: identity.json in a directory mounted read-only (mode 0444 in a 0555 dir as well).
    const identityDir = await mkdtemp(path.join(tmpdir(), 'ztctl-ro-identity-'))
    const runDir = await mkdtemp(path.join(tmpdir(), 'ztctl-ro-run-'))
    t.after(() => Promise.all([rm(identityDir, {force: true, recursive: true}), rm(runDir, {force: true, recursive: true})]))
    const identityFile = path.join(identityDir, 'identity.json')
    await copyFile(await enroll(ctl, daemon.name, daemon.role), identityFile)
    await chmod(identityFile, 0o444)
    await chmod(identityDir, 0o555)
    const bytes = await readFile(identityFile)
    const first = certInfo((await readIdentityFile(identityFile)).cert)

    const running = await spawnReadOnly(t, identityDir, [...daemon.args, '-i', identityFile, '--controller', ctl.url], path.join(runDir, 'ready.json'))
    const served = running.addresses[daemon.served]!
    const firstServed = await servedCertificate(served, client)
    assert.equal(firstServed.serial, first.serial.toLowerCase(), 'serves the certificate from the file at first')

    const renewalLog = () => running.stdout().split('\n').filter((line) => line.includes('renew')).join('\n')
    const renewed = await nextServed(served, client, firstServed.serial, first.notAfter.getTime()).catch((error: Error) => assert.fail(`${error.message}; the renewal log:\n${renewalLog()}`))
    assert.ok(renewed.at < first.notAfter.getTime(), 'renewed before the old certificate expired')
    assert.ok(renewed.notAfter > first.notAfter.getTime(), 'the new certificate outlives the old one')
    // A second renewal starts from the in-memory certificate (the file still holds the first, soon expired).
    const again = await nextServed(served, client, renewed.serial, renewed.notAfter).catch((error: Error) => assert.fail(`${error.message}; the renewal log:\n${renewalLog()}`))
    assert.ok(again.at < renewed.notAfter, 'renewed again before the renewed certificate expired')

    assert.deepEqual(await readFile(identityFile), bytes, 'the identity file is unchanged')
    const logs = running.stdout().split('\n').filter(Boolean).map((line) => JSON.parse(line) as {file?: string; message: string; storage?: string})
    const memoryOnly = logs.filter((line) => /in memory/.test(line.message))
    assert.equal(memoryOnly.length, 1, `said once that renewed certificates are kept in memory: ${JSON.stringify(memoryOnly)}`)
    assert.equal(memoryOnly[0]!.file, identityFile)
    const renewals = logs.filter((line) => line.message === 'certificate renewed')
    assert.ok(renewals.length >= 2, 'each renewal logged')
    assert.deepEqual(new Set(renewals.map((line) => line.storage)), new Set(['memory']), 'each renewal says where it is kept')
    assert.equal(logs.filter((line) => /renewal failed/.test(line.message)).length, 0, 'no renewal failed')

    if (daemon.role === 'agent') {
      // The agent's admin dump has the certificate's expiry, and now where it is kept.
      const dump = await fetch(`http://${running.addresses.admin}/config_dump`).then(async (response) => (await response.json()) as {certificates: {certChain: {serialNumber: string}[]; storage: string}[]})
      assert.equal(dump.certificates[0]!.storage, 'memory')
      assert.equal(dump.certificates[0]!.certChain[0]!.serialNumber.toLowerCase(), (await servedCertificate(served, client)).serial)
    }
  })
}

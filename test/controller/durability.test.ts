// Durability of what the controller writes (root: loop devices). A power loss is simulated for real: the
// controller's data dir and home live on an ext4 filesystem on a loop device; right after the controller has
// written its CA key, admin identity and store (its banner), it is killed with kill -9 and the loop device's
// backing file is copied at once: the copy is what the disk held at that instant (page-cache data not yet
// written back is missing from it, as after a power cut). Mounted (journal replay included), the copy must
// hold a valid CA key pair and admin identity, and a controller started on it must serve that identity.
// Agent statuses are written without fsync (soft state): a configuration commit right after them is on
// disk all the same. Also: a store in an existing 0755 --data-dir is not readable by other users.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {createPrivateKey, createPublicKey, X509Certificate} from 'node:crypto'
import {chmod, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'
import {promisify} from 'node:util'

import {openSqliteStore} from '../../src/lib/controller/store/sqlite.js'
import {readIdentityFile} from '../../src/lib/identity/file.js'
import {startTestController} from '../helpers/controller.js'
import {hasRoot} from '../helpers/netns.js'
import {requireTools} from '../helpers/tools.js'

const run = promisify(execFile)

interface LoopFs {
  image: string
  mount: string
  /** copy the backing file now and mount the copy (a crash image); returns where */
  crashImage(): Promise<string>
}

async function loopFs(t: {after(fn: () => Promise<void>): void}): Promise<LoopFs> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ztctl-durability-'))
  const devices: string[] = []
  const mounts: string[] = []
  t.after(async () => {
    for (const mount of mounts.reverse()) await run('umount', [mount]).catch(() => run('umount', ['-l', mount]).catch(() => {}))
    for (const device of devices) await run('losetup', ['-d', device]).catch(() => {})
    await rm(dir, {force: true, recursive: true})
  })
  const attach = async (image: string, mount: string): Promise<void> => {
    const device = (await run('losetup', ['--find', '--show', image])).stdout.trim()
    devices.push(device)
    await mkdir(mount)
    await run('mount', ['-t', 'ext4', device, mount])
    mounts.push(mount)
  }

  const image = path.join(dir, 'disk.img')
  await run('truncate', ['-s', '64M', image])
  await run('mkfs.ext4', ['-q', '-F', image])
  await attach(image, path.join(dir, 'disk'))
  return {
    image,
    mount: path.join(dir, 'disk'),
    async crashImage() {
      const copy = path.join(dir, 'crash.img')
      await run('cp', ['--sparse=always', image, copy])
      await attach(copy, path.join(dir, 'crash'))
      return path.join(dir, 'crash')
    },
  }
}

const publicKeyOf = (pem: string): string => createPublicKey(createPrivateKey(pem)).export({format: 'pem', type: 'spki'}).toString()

test('durability: keys and identities survive a power cut right after they are written; the store is private', async (t) => {
  hasRoot()
  requireTools('losetup', 'mkfs.ext4')

  await t.test('kill -9 right after the controller wrote its CA key and admin identity, then a power cut', async (tt) => {
    const fs = await loopFs(tt)
    const home = path.join(fs.mount, 'home')
    await mkdir(home)
    const ctl = await startTestController(tt, {home})
    // A control written the way writeFileAtomic used to (no fsync), at the same moment.
    await writeFile(path.join(fs.mount, 'control.tmp'), 'x'.repeat(4096))
    await rename(path.join(fs.mount, 'control.tmp'), path.join(fs.mount, 'control'))
    await ctl.kill9()
    const crashed = await fs.crashImage()
    const control = await stat(path.join(crashed, 'control')).then((info) => info.size, () => -1)
    tt.diagnostic(`control file written without fsync: ${control === -1 ? 'missing' : `${control} of 4096 bytes`} in the crash image`)

    const data = path.join(crashed, 'home', 'controller')
    const caKey = await readFile(path.join(data, 'ca.key'), 'utf8')
    const caCert = await readFile(path.join(data, 'ca.crt'), 'utf8')
    assert.match(caKey, /^-----BEGIN PRIVATE KEY-----/, 'the CA key is complete')
    assert.equal(publicKeyOf(caKey), new X509Certificate(caCert).publicKey.export({format: 'pem', type: 'spki'}).toString(), 'and it is the key of the CA certificate')
    const admin = await readIdentityFile(path.join(crashed, 'home', 'identities', 'admin.json'))
    assert.ok(new X509Certificate(admin.cert).checkPrivateKey(createPrivateKey(admin.key)), 'the admin identity holds its key')

    // A controller started on what the disk held serves that same admin identity.
    const after = await startTestController(tt, {home: path.join(crashed, 'home')})
    const listed = await after.run(['identity', 'list', '-o', 'json'])
    assert.equal(listed.code, 0, listed.stderr)
    assert.deepEqual((JSON.parse(listed.stdout) as {name: string}[]).map((identity) => identity.name), ['admin'])
    const again = await readIdentityFile(path.join(crashed, 'home', 'identities', 'admin.json'))
    assert.equal(again.cert, admin.cert, 'the same admin certificate (not a new one)')
    await after.stop()
  })

  await t.test('a configuration commit after unsynced agent statuses survives a power cut', async (tt) => {
    const fs = await loopFs(tt)
    const store = await openSqliteStore(path.join(fs.mount, 'store'))
    tt.after(() => store.close())
    await Promise.all(Array.from({length: 50}, (_, index) => store.recordAgentStatus({ackedVersion: 0, connected: true, name: `agent-${index}`})))
    const agent = {hbone: '10.0.0.1:15008', name: 'after-statuses', spiffe: 'spiffe://cluster.local/agent/after-statuses'}
    const version = await store.putResource('agent', 'after-statuses', agent)
    await store.recordAgentStatus({ackedVersion: version, connected: true, name: 'agent-0'})
    const crashed = await openSqliteStore(path.join(await fs.crashImage(), 'store'))
    tt.after(() => crashed.close())
    assert.deepEqual(await crashed.getResource('agent', 'after-statuses'), agent, 'the commit is on disk')
    assert.equal(await crashed.currentVersion(), version)
  })

  await t.test('a store in an existing 0755 --data-dir is not readable by other users', async (tt) => {
    const home = await mkdtemp(path.join(tmpdir(), 'ztctl-perm-'))
    tt.after(() => rm(home, {force: true, recursive: true}))
    await chmod(home, 0o755) // others may traverse: only the files' own modes protect them
    const dataDir = path.join(home, 'shared')
    await mkdir(dataDir, {mode: 0o755})
    const ctl = await startTestController(tt, {dataDir, home})
    assert.equal((await ctl.run(['identity', 'create', 'web'])).code, 0) // a write: the WAL exists now
    const asNobody = (file: string) => run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'cat', file])
    assert.match((await asNobody(path.join(dataDir, 'ca.crt'))).stdout, /BEGIN CERTIFICATE/, 'nobody can reach the folder (the CA certificate is public)')
    for (const name of ['store.db', 'store.db-wal', 'store.db-shm', 'ca.key']) {
      const file = path.join(dataDir, name)
      assert.equal((await stat(file)).mode & 0o777, 0o600, `${name} is 0600`)
      await assert.rejects(asNobody(file), /Permission denied/, `${name} unreadable by others`)
    }

    await ctl.stop()
  })
})

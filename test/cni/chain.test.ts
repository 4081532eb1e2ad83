// Chaining the plugin into a node's CNI configuration directory and taking it out: the runtime's file is
// restored byte for byte, every write is whole, the primary CNI rewriting its file is followed.
import assert from 'node:assert/strict'
import {mkdir, mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterEach, beforeEach, describe, test} from 'node:test'

import {chainPlugin, installPluginBinary, PLUGIN_BINARY, removePluginBinary, unchainPlugin} from '../../src/lib/cni/chain.js'
import {PLUGIN_SOURCE} from '../../src/lib/cni/agent.js'

// odd spacing and key order on purpose: only a byte-for-byte copy gives this back
const ORIGINAL = '{"cniVersion": "0.4.0",  "name": "ztk8s", "plugins": [\n  {"type": "bridge", "bridge": "zk1", "ipam": {"type": "host-local"}}]}\n'
const entry = {socket: '/var/run/ztctl/node/cni.sock', type: 'ztctl-cni'}

describe('chainPlugin / unchainPlugin', () => {
  let dir: string
  let confDir: string
  let stateDir: string
  const conflist = (): string => path.join(confDir, '10-ztk8s.conflist')
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ztctl-chain-'))
    confDir = path.join(dir, 'net.d')
    stateDir = path.join(dir, 'run/cni')
    await mkdir(confDir)
    await writeFile(conflist(), ORIGINAL)
    await writeFile(path.join(confDir, '99-later.conflist'), '{"cniVersion":"0.4.0","name":"later","plugins":[{"type":"loopback"}]}')
  })
  afterEach(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  test('chains last into the first .conflist, idempotently, and restores it byte for byte', async () => {
    assert.deepEqual(await chainPlugin({confDir, entry, stateDir}), {changed: true, file: conflist()})
    const chained = JSON.parse(await readFile(conflist(), 'utf8')) as {name: string; plugins: {type: string}[]}
    assert.deepEqual(chained.plugins.map((plugin) => plugin.type), ['bridge', 'ztctl-cni'])
    assert.equal(chained.name, 'ztk8s')
    assert.deepEqual(await chainPlugin({confDir, entry, stateDir}), {changed: false, file: conflist()}, 'a second agent start changes nothing')
    assert.deepEqual((await readdir(confDir)).sort(), ['10-ztk8s.conflist', '99-later.conflist'], 'no temp or backup file in the directory the runtime reads')
    assert.deepEqual(await unchainPlugin({confDir, stateDir}), {file: conflist(), outcome: 'restored'})
    assert.equal(await readFile(conflist(), 'utf8'), ORIGINAL)
    assert.deepEqual(await readdir(stateDir), [], 'nothing kept after the restore')
    assert.deepEqual(await unchainPlugin({confDir, stateDir}), {file: conflist(), outcome: 'not-chained'})
  })

  test('a new socket path rewrites the entry and still restores the first original', async () => {
    await chainPlugin({confDir, entry, stateDir})
    await chainPlugin({confDir, entry: {...entry, socket: '/elsewhere/cni.sock'}, stateDir})
    const chained = JSON.parse(await readFile(conflist(), 'utf8')) as {plugins: {socket?: string; type: string}[]}
    assert.equal(chained.plugins.filter((plugin) => plugin.type === 'ztctl-cni').length, 1)
    assert.equal(chained.plugins.at(-1)?.socket, '/elsewhere/cni.sock')
    await unchainPlugin({confDir, stateDir})
    assert.equal(await readFile(conflist(), 'utf8'), ORIGINAL)
  })

  test('the primary CNI rewriting its file: chained again, and that version is what is restored', async () => {
    await chainPlugin({confDir, entry, stateDir})
    const rewritten = ORIGINAL.replace('zk1', 'zk2')
    await writeFile(conflist(), rewritten)
    assert.equal((await chainPlugin({confDir, entry, stateDir})).changed, true)
    await unchainPlugin({confDir, stateDir})
    assert.equal(await readFile(conflist(), 'utf8'), rewritten)
  })

  test('the owner edited the file and kept our entry: unchaining takes only our entry out', async () => {
    await chainPlugin({confDir, entry, stateDir})
    const list = JSON.parse(await readFile(conflist(), 'utf8')) as {plugins: Record<string, unknown>[]}
    list.plugins.splice(1, 0, {type: 'portmap'})
    await writeFile(conflist(), JSON.stringify(list))
    assert.deepEqual(await unchainPlugin({confDir, stateDir}), {file: conflist(), outcome: 'edited'})
    assert.deepEqual((JSON.parse(await readFile(conflist(), 'utf8')) as {plugins: {type: string}[]}).plugins.map((plugin) => plugin.type), ['bridge', 'portmap'])
  })

  test('what cannot be chained is said in words: no configuration, a single .conf, not JSON', async () => {
    await rm(conflist())
    await rm(path.join(confDir, '99-later.conflist'))
    await assert.rejects(chainPlugin({confDir, entry, stateDir}), {code: 'ZT_ERR_CNI_CHAIN', message: /holds no network configuration/})
    await writeFile(path.join(confDir, '10-single.conf'), '{"cniVersion":"0.4.0","name":"x","type":"bridge"}')
    await assert.rejects(chainPlugin({confDir, entry, stateDir}), {message: /not a network configuration list/})
    await writeFile(path.join(confDir, '05-broken.conflist'), '{"plugins": [')
    await assert.rejects(chainPlugin({confDir, entry, stateDir}), {message: /05-broken.conflist is not JSON/})
  })

  test('the executable is installed whole into the plugin directory and removed', async () => {
    const binDir = path.join(dir, 'bin')
    await mkdir(binDir)
    const target = await installPluginBinary(PLUGIN_SOURCE, binDir)
    assert.equal(target, path.join(binDir, PLUGIN_BINARY))
    assert.deepEqual(await readFile(target), await readFile(PLUGIN_SOURCE))
    assert.deepEqual(await readdir(binDir), [PLUGIN_BINARY])
    await removePluginBinary(binDir)
    assert.deepEqual(await readdir(binDir), [])
    await assert.rejects(installPluginBinary(PLUGIN_SOURCE, path.join(dir, 'missing')), {code: 'ZT_ERR_CNI_INSTALL'})
  })
})

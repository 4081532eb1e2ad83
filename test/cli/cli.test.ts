// The CLI against a real controller: contexts, version, output formats, exit codes.
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'

import {runCli, startTestController} from '../helpers/controller.js'

test('contexts, version and output formats', async (t) => {
  const ctl = await startTestController(t)

  const list = await ctl.run(['context', 'list'])
  assert.equal(list.code, 0, list.stderr)
  assert.match(list.stdout, /^CURRENT\s+NAME\s+CONTROLLER\s+IDENTITY/)
  assert.match(list.stdout, new RegExp(`\\*\\s+local\\s+${ctl.url.replaceAll('.', '\\.')}`))

  const show = JSON.parse((await ctl.run(['context', 'show', '-o', 'json'])).stdout)
  assert.equal(show.name, 'local')
  assert.equal(show.spiffe, 'spiffe://cluster.local/identity/admin')

  const missing = await ctl.run(['context', 'use', 'nope'])
  assert.equal(missing.code, 3)
  assert.match(missing.stderr, /ZT_ERR_CONTEXT_NOT_FOUND/)
  assert.equal((await ctl.run(['context', 'use', 'local'])).code, 0)
  assert.equal((await ctl.run(['identity', 'list', '--context', 'nope'])).code, 3)

  const version = JSON.parse((await ctl.run(['version', '--json'])).stdout)
  assert.equal(version.client.version, version.controller.version)
  assert.equal(version.controller.url, ctl.url)

  assert.equal((await ctl.run(['identity', 'create', 'web', '-a', 'frontend'])).code, 0)
  const json = JSON.parse((await ctl.run(['identity', 'list', '-o', 'json'])).stdout) as {name: string; roles: string[]}[]
  assert.deepEqual(json.map((identity) => identity.name).sort(), ['admin', 'web'])
  const yaml = (await ctl.run(['identity', 'list', '-o', 'yaml'])).stdout
  assert.match(yaml, /- admin: true/)
  assert.match(yaml, /name: web/)
  const table = (await ctl.run(['identity', 'list'])).stdout
  assert.match(table, /^NAME\s+ID\s+STATUS\s+ROLES/)
  assert.match(table, /web\s+\S+\s+pending\s+#frontend/)

  const notFound = await ctl.run(['identity', 'show', 'ghost'])
  assert.equal(notFound.code, 3)
  assert.match(notFound.stderr, /ZT_ERR_NOT_FOUND/)
  const notFoundJson = await ctl.run(['identity', 'delete', 'ghost', '--json'])
  assert.equal(notFoundJson.code, 3)
  assert.equal(JSON.parse(notFoundJson.stdout).error.code, 'ZT_ERR_NOT_FOUND')

  // A second controller on the same data dir fails clearly.
  const second = await ctl.run(['controller', 'run', '--listen', '127.0.0.1:0', '--data-dir', ctl.dataDir], {timeoutMs: 20_000})
  assert.equal(second.code, 6)
  assert.match(second.stderr, /ZT_ERR_STORE_LOCKED/)

  // A different trust domain later is refused with a suggestion.
  await ctl.stop()
  const mismatch = await ctl.run(['controller', 'run', '--listen', '127.0.0.1:0', '--data-dir', ctl.dataDir, '--trust-domain', 'other.org'], {timeoutMs: 20_000})
  assert.equal(mismatch.code, 6)
  assert.match(mismatch.stderr, /ZT_ERR_TRUST_DOMAIN_MISMATCH/)

  // With the controller down, `version` still answers (client only) and identity commands exit 5.
  const offline = JSON.parse((await ctl.run(['version', '--json'])).stdout)
  assert.equal(offline.controller, undefined)
  const unreachable = await ctl.run(['identity', 'list'])
  assert.equal(unreachable.code, 5)
  assert.ok(unreachable.stderr.includes(ctl.url))
})

test('no context: a clear error', async (t) => {
  const home = await mkdtemp(path.join(tmpdir(), 'ztctl-empty-'))
  t.after(() => rm(home, {force: true, recursive: true}))
  const result = await runCli(['identity', 'list'], {...process.env, NO_COLOR: '1', ZTCTL_HOME: home})
  assert.equal(result.code, 3)
  assert.match(result.stderr, /ZT_ERR_NO_CONTEXT/)
  const version = await runCli(['version', '--json'], {...process.env, ZTCTL_HOME: home})
  assert.equal(version.code, 0)
  assert.equal(JSON.parse(version.stdout).controller, undefined)
})

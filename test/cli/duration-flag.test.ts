// One --timeout flag (durationFlag, src/lib/cli/flag-groups.ts) on uninstall, verify-install and every
// command that waits for the agents: a bad value fails the parse, before any cluster or controller is
// asked, as ZT_ERR_BAD_FLAG (exit 2) with the same message everywhere; a good one gets past the parse.
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'

import {durationFlag} from '../../src/lib/cli/flag-groups.js'
import {ZtError} from '../../src/lib/errors.js'
import {runCli} from '../helpers/controller.js'

const COMMANDS: [string, string[]][] = [
  ['uninstall', ['uninstall', '-y']],
  ['verify-install', ['verify-install', '--traffic']],
  ['a waiting mesh change (waitFlags)', ['tunnel', 'close', 'inbound', 'tcp/web', '--agent', 'a']],
  ['identity delete (waitFlags)', ['identity', 'delete', 'web', '--yes']],
]

const BAD_VALUES = ['soon', '0', '0s', '-1s', '', '5 minutes', '1e3s', 'x'.repeat(5000), '\u00FF\u202E1s']

test('a bad --timeout is ZT_ERR_BAD_FLAG on every command, before anything is asked', async (t) => {
  const home = await mkdtemp(path.join(tmpdir(), 'ztctl-duration-'))
  t.after(() => rm(home, {force: true, recursive: true}))
  // No context and no kubeconfig: a value that got past the parse fails for that, not for the flag.
  const env: NodeJS.ProcessEnv = {...process.env, KUBECONFIG: path.join(home, 'no-kubeconfig'), NO_COLOR: '1', ZTCTL_HOME: home}
  delete env.ZTCTL_CONTEXT
  for (const [what, args] of COMMANDS) {
    for (const value of BAD_VALUES) {
      const result = await runCli([...args, '--timeout', value], env)
      const shown = value.length > 20 ? `${value.slice(0, 20)}…` : value
      assert.equal(result.code, 2, `${what} --timeout ${JSON.stringify(shown)}: ${result.stderr}`)
      assert.equal(result.stderr, `Error (ZT_ERR_BAD_FLAG): --timeout ${JSON.stringify(value)} is not a duration\nTry this: e.g. --timeout 90s or --timeout 3m\n`, what)
    }

    const json = await runCli([...args, '--timeout', 'soon', '-o', 'json'], env)
    assert.equal(json.code, 2)
    assert.deepEqual(JSON.parse(json.stdout), {error: {code: 'ZT_ERR_BAD_FLAG', exit: 2, message: '--timeout "soon" is not a duration', suggestion: 'e.g. --timeout 90s or --timeout 3m'}})

    const good = await runCli([...args, '--timeout', '1.5m'], env)
    assert.doesNotMatch(good.stderr, /ZT_ERR_BAD_FLAG|--timeout/, `${what}: a good value passes the parse`)
    assert.match(good.stderr, /^Error \(ZT_ERR_[A-Z_]+\): /, `${what}: fails for the missing context or cluster instead`)
  }
})

test('durationFlag names its own flag: in a bad default and in a bad value', async () => {
  const badFlag = (name: string, text: string) => (error: unknown): boolean => {
    assert.ok(ZtError.is(error))
    assert.deepEqual([error.code, error.exit, error.message, error.suggestion], ['ZT_ERR_BAD_FLAG', 2, `--${name} ${JSON.stringify(text)} is not a duration`, `e.g. --${name} 90s or --${name} 3m`])
    return true
  }

  assert.throws(() => durationFlag('grace', {default: 'soon', description: 'a bad default'}), badFlag('grace', 'soon'))
  assert.throws(() => durationFlag('interval', {default: '0s', description: 'a zero default'}), badFlag('interval', '0s'))
  const flag = durationFlag('grace', {default: '500ms', description: 'a good default'})
  assert.equal(flag.default, 500)
  assert.equal(typeof flag.defaultHelp === 'function' ? await flag.defaultHelp({flags: {}, options: flag}) : flag.defaultHelp, '500ms', 'help shows the default as written')
  assert.equal(await flag.parse('1.5m', {} as never, flag), 90_000)
  await assert.rejects(flag.parse('-1s', {} as never, flag), badFlag('grace', '-1s'))
})

// Every exit code of the README's table, produced by a real command against a real controller: the
// table is read from the README, so a code added there without a case here fails this test.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'
import {fileURLToPath} from 'node:url'

import {RUN_JS, runCli, startTestController, type TestController} from '../helpers/controller.js'

const README = fileURLToPath(new URL('../../README.md', import.meta.url))

async function readmeExitCodes(): Promise<number[]> {
  const text = await readFile(README, 'utf8')
  const table = text.slice(text.indexOf('## Exit codes'), text.indexOf('\n## ', text.indexOf('## Exit codes') + 1))
  return [...table.matchAll(/^\| (\d+) \|/gm)].map((match) => Number(match[1]))
}

/** Ctrl-C on a long-running command (proxy-status --watch) once its first refresh is out. */
async function interrupted(ctl: TestController): Promise<null | number> {
  const child = spawn(process.execPath, [RUN_JS, 'proxy-status', '--watch', '-o', 'json'], {env: ctl.env, stdio: ['ignore', 'pipe', 'ignore']})
  const exited = new Promise<null | number>((resolve) => child.once('exit', (code) => resolve(code)))
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()))
  child.kill('SIGINT')
  return exited
}

test('every exit code in the README is what some command really returns', async (t) => {
  const ctl = await startTestController(t)
  assert.equal((await ctl.run(['identity', 'create', 'viewer'])).code, 0)
  assert.equal((await ctl.run(['enroll', 'viewer.jwt', '--context', 'viewer'])).code, 0)
  const corrupt = path.join(ctl.home, 'corrupt-home')
  await mkdir(corrupt)
  await writeFile(path.join(corrupt, 'contexts.json'), '[1, 2')

  const produced = new Map<number, string>()
  const expect = async (code: number, what: string, run: () => Promise<null | number | {code: null | number; stderr: string}>, error?: RegExp): Promise<void> => {
    const result = await run()
    const got = typeof result === 'object' && result !== null ? result.code : result
    assert.equal(got, code, `${what}: ${typeof result === 'object' && result !== null ? result.stderr : ''}`)
    if (error && typeof result === 'object' && result !== null) assert.match(result.stderr, error, what)
    produced.set(code, what)
  }

  await expect(0, 'success', () => ctl.run(['version']))
  await expect(1, 'failure (an unusable contexts.json)', () => runCli(['identity', 'list'], {...ctl.env, ZTCTL_HOME: corrupt}), /ZT_ERR_CONTEXTS_CORRUPT/)
  await expect(2, 'usage (an unknown flag)', () => ctl.run(['tunnel', 'list', '--bogus']), /ZT_ERR_USAGE/)
  await expect(3, 'not found (no such identity)', () => ctl.run(['identity', 'show', 'ghost']), /ZT_ERR_NOT_FOUND/)
  await expect(4, 'refused (not an admin)', () => ctl.run(['identity', 'list', '--context', 'viewer']), /ZT_ERR_FORBIDDEN/)
  await expect(6, 'conflict (name taken)', () => ctl.run(['identity', 'create', 'viewer']), /ZT_ERR_NAME_TAKEN/)
  await expect(127, 'no such command', () => ctl.run(['tunel', 'list']), /ZT_ERR_UNKNOWN_COMMAND/)
  await expect(130, 'interrupted (Ctrl-C)', () => interrupted(ctl))
  await ctl.stop()
  await expect(5, 'unreachable (controller stopped)', () => ctl.run(['identity', 'list']), /ZT_ERR_CONTROLLER_UNREACHABLE/)

  assert.deepEqual([...produced.keys()].sort((a, b) => a - b), (await readmeExitCodes()).sort((a, b) => a - b), 'one case per README exit code')
})

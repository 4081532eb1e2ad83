// `ztctl version` / `--version` answered by bin/run.js without oclif (src/lib/cli/version-fast-path.ts)
// print the same bytes as the oclif command does for the same arguments, and every case the fast path
// cannot be sure of (a context to probe, other flags, garbage) is left to oclif.
import assert from 'node:assert/strict'
import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {pathToFileURL} from 'node:url'
import {test, type TestContext} from 'node:test'

import {execa} from 'execa'

import {RUN_JS} from '../helpers/controller.js'

const ROOT = path.dirname(path.dirname(RUN_JS))

/** Reports on stderr, at exit, whether @oclif/core was ever loaded into the process. */
const OCLIF_PROBE = `data:text/javascript,${encodeURIComponent(
  'import {createRequire} from "node:module"; const cache = createRequire("/").cache; ' +
    'process.on("exit", () => process.stderr.write(Object.keys(cache).some((file) => file.includes("@oclif/core")) ? "[oclif loaded]" : "[no oclif]"))',
)}`

/** The oclif command itself, as bin/run.js would run it without a fast path. */
const OCLIF_ONLY = `import {execute} from '@oclif/core'; await execute({dir: ${JSON.stringify(pathToFileURL(RUN_JS).href)}, args: process.argv.slice(1)})`

interface Run {
  code: number | undefined
  oclif: boolean
  stderr: string
  stdout: string
}

async function run(nodeArgs: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  const result = await execa(process.execPath, ['--import', OCLIF_PROBE, ...nodeArgs], {cwd: ROOT, env, extendEnv: false, reject: false, stripFinalNewline: false, timeout: 30_000})
  assert.equal(result.timedOut, false)
  const stderr = String(result.stderr)
  const oclif = stderr.endsWith('[oclif loaded]')
  assert.ok(oclif || stderr.endsWith('[no oclif]'), stderr)
  return {code: result.exitCode, oclif, stderr: stderr.replace(/\[(oclif loaded|no oclif)\]$/, ''), stdout: String(result.stdout)}
}

const viaBin = (args: string[], env: NodeJS.ProcessEnv): Promise<Run> => run([RUN_JS, ...args], env)
const viaOclif = (args: string[], env: NodeJS.ProcessEnv): Promise<Run> => run(['--input-type=module', '-e', OCLIF_ONLY, '--', ...args], env)

/** An environment whose every ztctl and oclif folder is a fresh temp dir. */
async function isolatedEnv(t: TestContext): Promise<{dir: string; env: NodeJS.ProcessEnv}> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ztctl-version-'))
  t.after(() => rm(dir, {force: true, recursive: true}))
  const env: NodeJS.ProcessEnv = {...process.env, HOME: dir, XDG_CACHE_HOME: path.join(dir, 'cache'), XDG_CONFIG_HOME: path.join(dir, 'config'), XDG_DATA_HOME: path.join(dir, 'data')}
  for (const name of ['ZTCTL_HOME', 'ZTCTL_CONTEXT', 'ZTCTL_CONFIG_DIR', 'ZTCTL_DATA_DIR']) delete env[name]
  return {dir, env}
}

async function assertSameAsOclif(args: string[], env: NodeJS.ProcessEnv, expectFastPath: boolean): Promise<Run> {
  const [fast, oclif] = [await viaBin(args, env), await viaOclif(args, env)]
  const what = `ztctl ${args.join(' ')}`
  assert.equal(oclif.oclif, true, `${what}: the reference run loads oclif`)
  assert.equal(fast.oclif, !expectFastPath, `${what}: ${expectFastPath ? 'answered without' : 'left to'} oclif`)
  assert.equal(fast.stdout, oclif.stdout, `${what}: stdout`)
  assert.equal(fast.stderr, oclif.stderr, `${what}: stderr`)
  assert.equal(fast.code, oclif.code, `${what}: exit code`)
  return fast
}

const FAST_CASES = [['version'], ['version', '-o', 'json'], ['version', '--output', 'json'], ['version', '--output=json'], ['version', '--json'], ['version', '-o', 'table'], ['--version'], ['--version', 'extra']]

test('the fast path prints what the oclif command prints, without loading oclif', async (t) => {
  const {env} = await isolatedEnv(t)
  for (const args of FAST_CASES) await assertSameAsOclif(args, env, true)
  const json = JSON.parse((await viaBin(['version', '--json'], env)).stdout) as {client: {node: string; version: string}}
  assert.deepEqual(json, {client: {node: process.version, version: '0.1.0'}})
})

test('every other argument list goes to oclif, with the same result', async (t) => {
  const {env} = await isolatedEnv(t)
  for (const args of [['version', '-o', 'yaml'], ['version', '--bogus'], ['version', '-o', 'xml'], ['version', '--json', '-o', 'json'], ['version', 'extra'], ['version', '--help'], ['version', '-o']]) {
    await assertSameAsOclif(args, env, false)
  }
})

test('a home with a context (a controller to ask) or an oclif theme goes to oclif', async (t) => {
  const {dir, env} = await isolatedEnv(t)
  // A context whose controller does not answer: oclif's command probes it and reports "not reachable".
  const home = path.join(dir, 'ztctl-home')
  await mkdir(home, {recursive: true})
  await writeFile(path.join(home, 'contexts.json'), JSON.stringify({contexts: [{controller: 'https://127.0.0.1:9', identity: path.join(home, 'none.json'), name: 'gone'}], current: 'gone'}))
  const withContext = await assertSameAsOclif(['version'], {...env, ZTCTL_HOME: home}, false)
  assert.match(withContext.stdout, /controller version: not reachable/)

  // The same file in oclif's config dir (no ZTCTL_HOME), found through $ZTCTL_CONFIG_DIR and $XDG_CONFIG_HOME.
  await assertSameAsOclif(['version', '--json'], {...env, ZTCTL_CONFIG_DIR: home}, false)
  const xdgDir = path.join(dir, 'config', 'ztctl')
  await mkdir(xdgDir, {recursive: true})
  await writeFile(path.join(xdgDir, 'theme.json'), JSON.stringify({json: {key: 'red', string: 'green'}}))
  await assertSameAsOclif(['version', '--json'], {...env, FORCE_COLOR: '1'}, false)
})

// The root help replayed from $XDG_CACHE_HOME/ztctl/root-help.json (bin/run.js, src/lib/cli/help-cache.ts):
// the same bytes oclif renders, rendered anew whenever something it depends on changes, and a cache dir
// that cannot be written (read-only, a file, under /proc) only means no cache, never a hang or an error.
import assert from 'node:assert/strict'
import {chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test, type TestContext} from 'node:test'

import {execa} from 'execa'

import {RUN_JS} from '../helpers/controller.js'

const ROOT = path.dirname(path.dirname(RUN_JS))

interface Run {
  code: number | undefined
  stderr: string
  stdout: string
}

async function tempDir(t: TestContext, name: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), `ztctl-help-cache-${name}-`))
  t.after(() => rm(dir, {force: true, recursive: true}))
  return dir
}

function cacheEnv(cacheHome: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {...process.env, XDG_CACHE_HOME: cacheHome}
  for (const name of ['COLUMNS', 'FORCE_COLOR', 'NO_COLOR']) delete env[name]
  return {...env, ...extra}
}

/** `[prefix…] node RUN_JS --help` with exactly ENV (no inherited variables: the cache key covers them). */
async function help(env: NodeJS.ProcessEnv, options: {prefix?: string[]; runJs?: string} = {}): Promise<Run> {
  const [file, ...args] = [...(options.prefix ?? []), process.execPath, options.runJs ?? RUN_JS, '--help']
  const result = await execa(file!, args, {env, extendEnv: false, reject: false, stripFinalNewline: false, timeout: 30_000})
  assert.equal(result.timedOut, false, `${file} ${args.join(' ')} timed out`)
  return {code: result.exitCode, stderr: String(result.stderr), stdout: String(result.stdout)}
}

function assertClean(run: Run, what: string): void {
  assert.equal(run.code, 0, `${what}: ${run.stderr}`)
  assert.equal(run.stderr, '', what)
  assert.match(run.stdout, /^Zero-trust L4 networking toolkit/, what)
}

/** What oclif renders for ENV, with no cache to replay (a fresh cache dir). */
async function oclifRendering(t: TestContext, extra: NodeJS.ProcessEnv, runJs?: string): Promise<string> {
  const run = await help(cacheEnv(await tempDir(t, 'fresh'), extra), {runJs})
  assertClean(run, 'fresh render')
  return run.stdout
}

const cacheFile = (cacheHome: string): string => path.join(cacheHome, 'ztctl', 'root-help.json')

/** Replaces the cached text, key kept: a later run that prints it replayed the cache. */
async function tamperCachedText(cacheHome: string, marker: string): Promise<void> {
  const entry = JSON.parse(await readFile(cacheFile(cacheHome), 'utf8')) as {key: string; text: string}
  await writeFile(cacheFile(cacheHome), JSON.stringify({...entry, text: marker}))
}

test('the replayed root help is the bytes oclif rendered, and only for the same key', async (t) => {
  const cacheHome = await tempDir(t, 'key')
  const first = await help(cacheEnv(cacheHome))
  assertClean(first, 'first run (oclif)')
  const entry = JSON.parse(await readFile(cacheFile(cacheHome), 'utf8')) as {key: string; text: string}
  assert.equal(entry.text, first.stdout, 'the cache holds exactly what oclif printed')

  const replayed = await help(cacheEnv(cacheHome))
  assertClean(replayed, 'second run (cache)')
  assert.equal(replayed.stdout, first.stdout)

  // The key matches: a run with the same environment prints whatever the cache holds.
  await tamperCachedText(cacheHome, 'REPLAYED FROM CACHE\n')
  assert.equal((await help(cacheEnv(cacheHome))).stdout, 'REPLAYED FROM CACHE\n')

  for (const extra of [{COLUMNS: '50'}, {NO_COLOR: '1'}, {FORCE_COLOR: '1'}]) {
    const changed = await help(cacheEnv(cacheHome, extra))
    assertClean(changed, JSON.stringify(extra))
    assert.equal(changed.stdout, await oclifRendering(t, extra), `${JSON.stringify(extra)} renders anew`)
    await tamperCachedText(cacheHome, 'REPLAYED FROM CACHE\n')
  }
})

test('a changed manifest renders anew', async (t) => {
  // A copy of the package whose manifest can change: bin/ and the manifest copied, the rest linked.
  const root = await tempDir(t, 'root')
  await cp(path.join(ROOT, 'bin'), path.join(root, 'bin'), {recursive: true})
  await cp(path.join(ROOT, 'package.json'), path.join(root, 'package.json'))
  for (const linked of ['dist', 'node_modules']) await symlink(path.join(ROOT, linked), path.join(root, linked))
  const manifestFile = path.join(root, 'oclif.manifest.json')
  const manifest = JSON.parse(await readFile(path.join(ROOT, 'oclif.manifest.json'), 'utf8')) as {commands: Record<string, {description?: string}>}
  await writeFile(manifestFile, JSON.stringify(manifest))
  const runJs = path.join(root, 'bin', 'run.js')

  const cacheHome = await tempDir(t, 'manifest')
  const before = await help(cacheEnv(cacheHome), {runJs})
  assertClean(before, 'before')
  assert.equal((await help(cacheEnv(cacheHome), {runJs})).stdout, before.stdout)

  manifest.commands.version!.description = 'Say which version this is (a changed manifest)'
  await writeFile(manifestFile, JSON.stringify(manifest, null, 1))
  const after = await help(cacheEnv(cacheHome), {runJs})
  assertClean(after, 'after')
  assert.match(after.stdout, /Say which version this is \(a changed manifest\)/)
  assert.equal(after.stdout, await oclifRendering(t, {}, runJs))
})

test('a cache dir that cannot be written gives the right help and no cache', async (t) => {
  const expected = await oclifRendering(t, {})

  // A read-only directory: bind-mounted read-only in a mount namespace of the run's own as root
  // (root writes through mode bits), mode 0555 otherwise.
  const readOnly = await tempDir(t, 'ro')
  const isRoot = process.getuid?.() === 0
  const prefix = isRoot ? ['unshare', '-m', '--propagation', 'private', 'sh', '-c', `mount --bind -o ro "$0" "$0" && exec "$@"`, readOnly] : []
  if (!isRoot) await chmod(readOnly, 0o555)
  for (let run = 0; run < 2; run++) {
    const result = await help(cacheEnv(readOnly), {prefix})
    assertClean(result, 'read-only cache dir')
    assert.equal(result.stdout, expected)
  }

  assert.deepEqual(await readdir(readOnly), [], 'nothing was written into the read-only dir')

  // XDG_CACHE_HOME is a file: every mkdir under it fails with ENOTDIR.
  const fileHome = path.join(await tempDir(t, 'file'), 'not-a-dir')
  await writeFile(fileHome, 'a file\n')
  for (let run = 0; run < 2; run++) {
    const result = await help(cacheEnv(fileHome))
    assertClean(result, 'cache home is a file')
    assert.equal(result.stdout, expected)
  }

  assert.equal(await readFile(fileHome, 'utf8'), 'a file\n')
})

test('XDG_CACHE_HOME under /proc is skipped, not a hang (Node\'s recursive mkdir loops there)', async (t) => {
  const expected = await oclifRendering(t, {})
  for (const cacheHome of ['/proc/ztctl-nope', '/proc/self/ztctl-nope/deeper']) {
    const result = await help(cacheEnv(cacheHome))
    assertClean(result, cacheHome)
    assert.equal(result.stdout, expected)
  }
})

test('a garbage cache file is ignored and replaced', async (t) => {
  const cacheHome = await tempDir(t, 'garbage')
  const expected = await oclifRendering(t, {})
  await mkdir(path.join(cacheHome, 'ztctl'), {recursive: true})
  for (const garbage of ['', 'not json', '[]', 'null', '{"key": 1, "text": 2}', '\u0000\u00FF{{{']) {
    await writeFile(cacheFile(cacheHome), garbage)
    const result = await help(cacheEnv(cacheHome))
    assertClean(result, JSON.stringify(garbage))
    assert.equal(result.stdout, expected)
    assert.equal((JSON.parse(await readFile(cacheFile(cacheHome), 'utf8')) as {text: string}).text, expected)
  }
})

// The CLI's surface: the generated manifest matches the built commands, `--help` loads nothing heavy,
// a typo suggests the right command.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {readdir, readFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const run = promisify(execFile)

async function builtCommandIds(dir = path.join(root, 'dist/commands'), prefix: string[] = []): Promise<string[]> {
  const ids: string[] = []
  for (const entry of await readdir(dir, {withFileTypes: true})) {
    if (entry.isDirectory()) ids.push(...(await builtCommandIds(path.join(dir, entry.name), [...prefix, entry.name])))
    else if (entry.name.endsWith('.js')) {
      const name = entry.name.slice(0, -3)
      ids.push([...prefix, ...(name === 'index' ? [] : [name])].join(':'))
    }
  }

  return ids
}

test('oclif.manifest.json lists exactly the built commands with their flags', async () => {
  const manifest = JSON.parse(await readFile(path.join(root, 'oclif.manifest.json'), 'utf8')) as {
    commands: Record<string, {flags: Record<string, unknown>}>
    version: string
  }
  const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as {version: string}
  assert.equal(manifest.version, pkg.version, 'manifest was generated for another version: run `npm run build`')
  const built = (await builtCommandIds()).sort()
  assert.deepEqual(Object.keys(manifest.commands).sort(), built, 'manifest is stale: run `npm run build`')
  for (const id of built) {
    const file = path.join(root, 'dist/commands', ...id.split(':')) + '.js'
    const {default: command} = (await import(file)) as {default: {baseFlags?: object; enableJsonFlag?: boolean; flags?: object}}
    const json = command.enableJsonFlag ? {json: true} : {}
    const expected = Object.keys({...command.baseFlags, ...command.flags, ...json}).sort()
    assert.deepEqual(Object.keys(manifest.commands[id].flags).sort(), expected, `flags of ${id} differ from the manifest`)
  }
})

test('`ztctl --help` imports no heavy module', async () => {
  // Record every module the process resolves, through Node's synchronous module hooks.
  const hook = `import {registerHooks} from 'node:module'; import {appendFileSync} from 'node:fs';
    registerHooks({resolve(s, c, next) { const r = next(s, c); appendFileSync(process.env.ZT_TRACE, r.url + '\\n'); return r }})`
  const trace = path.join(await import('node:os').then((os) => os.tmpdir()), `zt-help-trace-${process.pid}.txt`)
  const {stdout} = await run(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(hook)}`, path.join(root, 'bin/run.js'), '--help'], {
    env: {...process.env, ZT_TRACE: trace},
  })
  assert.match(stdout, /USAGE/)
  const loaded = await readFile(trace, 'utf8')
  for (const heavy of ['node:http2', 'pino', '@peculiar', 'node:sqlite', '/yaml/', '@kubernetes']) {
    assert.ok(!loaded.includes(heavy), `--help loaded ${heavy}`)
  }

  await import('node:fs/promises').then((fs) => fs.rm(trace, {force: true}))
})

test('a mistyped command names the right one and exits 127', async () => {
  const error = (await run(process.execPath, [path.join(root, 'bin/run.js'), 'tunel', 'list']).then(
    () => assert.fail('expected a failure'),
    (error_: unknown) => error_,
  )) as {code: number; stderr: string}
  assert.equal(error.code, 127)
  assert.match(error.stderr, /ZT_ERR_UNKNOWN_COMMAND/)
  assert.match(error.stderr, /did you mean `ztctl tunnel list`/)
})

// One error and exit-code contract for every failure, oclif's own parse errors included: our layout
// (`Error (ZT_ERR_…)` + `Try this:`), exit 2 for usage, one small JSON (or YAML) error under --json / -o,
// unknown commands named by their closest real one (127), broken homes and data dirs as user errors,
// and the Node-version check before anything else runs.
import assert from 'node:assert/strict'
import {spawn, spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test, type TestContext} from 'node:test'

import {RUN_JS, runCli} from '../helpers/controller.js'

async function emptyHome(t: TestContext): Promise<NodeJS.ProcessEnv> {
  const home = await mkdtemp(path.join(tmpdir(), 'ztctl-errors-'))
  t.after(() => rm(home, {force: true, recursive: true}))
  const env: NodeJS.ProcessEnv = {...process.env, NO_COLOR: '1', ZTCTL_HOME: home}
  delete env.ZTCTL_CONTEXT
  return env
}

const USAGE_CASES: [string, string[], RegExp][] = [
  ['an unknown flag', ['tunnel', 'list', '--bogus'], /Nonexistent flag: --bogus/],
  ['a value outside the options', ['proxy-status', '-o', 'xml'], /Expected --output=xml to be one of: table, json, yaml/],
  ['a flag given twice', ['tunnel', 'close', 'inbound', 'tcp/web', '--agent', 'a', '--agent', 'b'], /--agent can only be specified once/],
  ['a missing argument', ['identity', 'show'], /Missing 1 required arg/],
  ['an argument outside its options', ['tunnel', 'close', 'sideways', 'tcp/web', '--agent', 'a'], /Expected sideways to be one of: inbound, outbound/],
  ['an extra argument', ['identity', 'show', 'web', 'extra'], /Unexpected argument: extra/],
  ['an argument to a command without any', ['tunnel', 'list', 'extra'], /`ztctl tunnel list` takes no argument "extra"/],
]

test('every parse error is ZT_ERR_USAGE, exit 2, in our layout', async (t) => {
  const env = await emptyHome(t)
  for (const [what, args, message] of USAGE_CASES) {
    const result = await runCli(args, env)
    assert.equal(result.code, 2, `${what}: ${result.stderr}`)
    assert.match(result.stderr, /^Error \(ZT_ERR_USAGE\): /, what)
    assert.match(result.stderr, message, what)
    assert.match(result.stderr, /\nTry this: see `ztctl [a-z -]+--help`/, what)
    assert.doesNotMatch(result.stderr, /›|^USAGE|\n\s+at /m, `${what}: no oclif layout, no stack`)
  }
})

test('--json on a parse error prints one small JSON error; -o yaml one YAML error', async (t) => {
  const env = await emptyHome(t)
  for (const args of [['tunnel', 'list', '--bogus', '--json'], ['identity', 'create', '--json'], ['proxy-status', '--output=xml', '--json'], ['controller', 'run', '--json']]) {
    const result = await runCli(args, env)
    assert.equal(result.code, 2, result.stdout + result.stderr)
    assert.ok(result.stdout.length < 600, `${args.join(' ')}: ${result.stdout.length} bytes`)
    const body = JSON.parse(result.stdout) as {error: Record<string, unknown>}
    assert.deepEqual(Object.keys(body), ['error'])
    assert.equal(body.error.code, 'ZT_ERR_USAGE')
    assert.equal(body.error.exit, 2)
    assert.match(String(body.error.suggestion), /--help/)
  }

  const yaml = await runCli(['tunnel', 'list', '-o', 'yaml', '--bogus'], env)
  assert.equal(yaml.code, 2)
  assert.match(yaml.stdout, /^error:\n {2}code: ZT_ERR_USAGE\n/)
  // A user error after parsing, too: machine-readable under -o json.
  const missing = await runCli(['identity', 'list', '-o', 'json'], env)
  assert.equal(missing.code, 3)
  assert.equal(JSON.parse(missing.stdout).error.code, 'ZT_ERR_NO_CONTEXT')
})

test('unknown commands: the closest command or topic, word by word, and exit 127', async (t) => {
  const env = await emptyHome(t)
  const cases: [string[], RegExp][] = [
    [['proxy-confg', 'all', 'agent-a'], /did you mean `ztctl proxy-config all agent-a`\?/],
    [['tunel'], /did you mean `ztctl tunnel`\? `ztctl tunnel` has: close, describe, list, open/],
    [['tunel', 'lst'], /did you mean `ztctl tunnel list`\?/],
    [['pc', 'nothing-like-it'], /`ztctl proxy-config` has: all, apps, connections, files/],
    [['help', 'foo'], /"foo" is not a ztctl command\nTry this: run `ztctl --help`/],
    [['foo', '--help'], /"foo" is not a ztctl command/],
    [['help', 'polcy', 'list'], /did you mean `ztctl policy list`\?/],
  ]
  for (const [args, suggestion] of cases) {
    const result = await runCli(args, env)
    assert.equal(result.code, 127, `${args.join(' ')}: ${result.stderr}`)
    assert.match(result.stderr, /^Error \(ZT_ERR_UNKNOWN_COMMAND\): /)
    assert.match(result.stderr, suggestion, args.join(' '))
  }
})

test('aliases users type from istioctl and kubectl reach the real commands', async (t) => {
  const env = await emptyHome(t)
  const dump = path.join(env.ZTCTL_HOME!, 'missing-dump.json')
  for (const alias of [['pc', 'all'], ['zc', 'workloads'], ['proxy-config', 'workload'], ['pc', 'certificate'], ['proxy-config', 'cert'], ['pc', 'secrets']]) {
    const result = await runCli([...alias, '--file', dump], env)
    // The command ran: it reports the missing dump file (3), not an unknown command.
    assert.equal(result.code, 3, `${alias.join(' ')}: ${result.stderr}`)
    assert.match(result.stderr, /cannot read .*missing-dump\.json/)
  }

  for (const topic of ['tunnel', 'identity', 'policy', 'context']) {
    const result = await runCli([topic, 'ls', '--json'], env)
    assert.notEqual(result.code, 127, `${topic} ls`)
    assert.notEqual(result.code, 2, `${topic} ls`)
  }

  const topicHelp = await runCli(['pc'], env)
  assert.equal(topicHelp.code, 0)
  assert.match(topicHelp.stdout, /ztctl proxy-config COMMAND/)
  const help = await runCli(['tunnel', 'open', 'inbound', 'tcp/web', '--help'], env)
  assert.equal(help.code, 0)
  assert.match(help.stdout, /USAGE\n {2}\$ ztctl tunnel open inbound SERVICE/)
})

test('a broken home or data dir is a user error naming the path, never a stack or a hang', async (t) => {
  const env = await emptyHome(t)
  const home = env.ZTCTL_HOME!
  await writeFile(path.join(home, 'contexts.json'), JSON.stringify({contexts: [{name: 'x'}]}))
  const schema = await runCli(['identity', 'list'], env)
  assert.equal(schema.code, 1)
  assert.match(schema.stderr, /ZT_ERR_CONTEXTS_CORRUPT\): .*contexts\.json cannot be used: contexts\[0\] has no "controller" string/)
  await writeFile(path.join(home, 'contexts.json'), '{not json')
  assert.match((await runCli(['context', 'list'], env)).stderr, /ZT_ERR_CONTEXTS_CORRUPT\): .*not valid JSON/)

  const file = path.join(home, 'a-file')
  await writeFile(file, '')
  const notDir = await runCli(['context', 'list'], {...env, ZTCTL_HOME: file})
  assert.equal(notDir.code, 1)
  assert.match(notDir.stderr, /ZT_ERR_FILESYSTEM\): cannot read .*a-file\/contexts\.json: a part of the path is a file, not a folder \(ENOTDIR\)/)
  for (const dataDir of [path.join(file, 'controller'), '/proc/ztctl-nope']) {
    const result = await runCli(['controller', 'run', '--listen', '127.0.0.1:0', '--data-dir', dataDir], env, {timeoutMs: 20_000})
    assert.equal(result.code, 1, `${dataDir}: ${result.stderr}`)
    assert.match(result.stderr, /ZT_ERR_FILESYSTEM\): cannot create the folder /)
    assert.doesNotMatch(result.stderr, /Internal error|\n\s+at /)
  }
})

test('Ctrl-C on controller run exits 130; SIGTERM exits 0', async (t) => {
  const env = await emptyHome(t)
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 0]] as const) {
    const child = spawn(process.execPath, [RUN_JS, 'controller', 'run', '--listen', '127.0.0.1:0'], {env, stdio: ['ignore', 'pipe', 'pipe']})
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL')
    })
    let stdout = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk))
    const exited = new Promise<null | number>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)))
    const deadline = Date.now() + 30_000
    while (!stdout.includes('controller listening at') && Date.now() < deadline && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 50))
    assert.match(stdout, /controller listening at/)
    child.kill(signal)
    assert.equal(await exited, code, signal)
  }
})

test('bin/run.js refuses an old Node before loading anything, and says how to get a new one', (t) => {
  // The machine's own Node (CI machines have Node 20; `.ci/env.sh` puts a newer one first on PATH).
  const old = ['/usr/bin/node', '/usr/local/bin/node'].find((candidate) => {
    if (!existsSync(candidate)) return false
    const major = Number(spawnSync(candidate, ['-p', 'process.versions.node.split(".")[0]'], {encoding: 'utf8'}).stdout.trim())
    return major > 0 && major < 22
  })
  // Without an old Node on this machine, the same check runs with the version Node reports changed.
  const args = old ? [RUN_JS, 'identity', 'list'] : ['--import', `data:text/javascript,${encodeURIComponent("Object.defineProperty(process.versions, 'node', {value: '20.11.1'}); Object.defineProperty(process, 'version', {value: 'v20.11.1'})")}`, RUN_JS, 'identity', 'list']
  t.diagnostic(old ? `old Node: ${old}` : 'no Node < 22 on this machine: process.versions changed instead')
  const result = spawnSync(old ?? process.execPath, args, {encoding: 'utf8', env: {...process.env, NO_COLOR: '1'}})
  assert.equal(result.status, 1)
  assert.match(result.stderr, /^Error \(ZT_ERR_NODE_VERSION\): ztctl needs Node\.js 22\.13 or newer; this is Node\.js v20\./)
  assert.match(result.stderr, /Try this: install Node\.js 22 LTS or newer .*\. \.ci\/env\.sh/)
  assert.doesNotMatch(result.stderr, /sqlite|\n\s+at /)
})

// The script app end to end: `ztctl script run` runs an allowed program on the agent's host — stdout and
// stderr come back separately, stdin goes in, the exit code (or the signal) comes back — and nothing else:
// an unlisted program, a script outside the script directory, a shell command line (unless the agent allows
// any command), an identity not on the allow list and one a policy denies are refused with the agent's reason.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {chmod, mkdir, symlink, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'

import {msUntilRenewal} from '../../src/lib/client/renew.js'
import {readIdentityFile} from '../../src/lib/identity/file.js'
import {certInfo} from '../../src/lib/pki/cert-info.js'
import {RUN_JS, type RunResult} from '../helpers/controller.js'
import {tempDir, waitFor} from '../proxy/helpers.js'
import {type AppMesh, startAppMesh} from './helpers.js'

/** `ztctl ARGS` with INPUT on its stdin; SIGNAL_AFTER: send it SIGINT once its stdout shows that text. */
function ztWithInput(mesh: AppMesh, args: string[], input: string, interruptWhen?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUN_JS, ...args], {cwd: mesh.ctl.home, env: mesh.ctl.env, stdio: ['pipe', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      if (interruptWhen && stdout.includes(interruptWhen)) child.kill('SIGINT')
    })
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code, stderr, stdout})
    })
    child.stdin.on('error', () => {})
    child.stdin.end(input)
  })
}

for (const dataPath of ['native', 'node'] as const) {
  test(`script run (${dataPath}): exit code, stdout and stderr apart, stdin, Ctrl-C; only what the agent allows`, {timeout: 180_000}, async (t) => {
    const dir = await tempDir(t)
    const scripts = path.join(dir, 'scripts')
    await mkdir(scripts)
    await writeFile(path.join(scripts, 'greet.sh'), '#!/bin/sh\necho "hello $1 from $ZTCTL_AGENT"\necho "asked by $ZTCTL_IDENTITY" >&2\nexit 5\n')
    await chmod(path.join(scripts, 'greet.sh'), 0o755)
    await writeFile(path.join(scripts, 'notes.txt'), 'not a program\n')
    await symlink('/bin/ls', path.join(scripts, 'escape'))
    await writeFile(path.join(dir, 'outside.sh'), '#!/bin/sh\necho outside\n')
    await chmod(path.join(dir, 'outside.sh'), 0o755)
    const mesh = await startAppMesh(t)
    const agentB = await mesh.agent('agent-b', {dataPath})
    const [alice, bob] = await Promise.all([mesh.user('alice'), mesh.user('bob')])
    const config = await mesh.zt(['script', 'config', '--agent', 'agent-b', '--add-user', '@alice', '--add-command', 'sh', '--add-command', '/bin/cat', '--add-command', 'sleep', '--script-dir', scripts])
    assert.equal(config.code, 0, config.stderr)
    await agentB.waitForApp('script', (app) => app.scriptDir === scripts)
    const run = (identity: string, ...words: string[]): Promise<RunResult> => mesh.zt(['script', 'run', 'agent-b', '--identity', identity, '--', ...words])

    const both = await run(alice, 'sh', '-c', 'echo "out $((6*7))"; echo "err $((6*8))" >&2; exit 3')
    assert.deepEqual([both.code, both.stdout, both.stderr], [3, 'out 42\n', 'err 48\n'], 'stdout and stderr come back apart, with the exit code')
    const greeted = await run(alice, 'greet.sh', 'world')
    assert.deepEqual([greeted.code, greeted.stdout, greeted.stderr], [5, 'hello world from agent-b\n', 'asked by alice\n'], 'a script of the directory, by name')
    const echoed = await ztWithInput(mesh, ['script', 'run', 'agent-b', '--identity', alice, '--', 'cat'], 'line one\nline two\n')
    assert.deepEqual([echoed.code, echoed.stdout], [0, 'line one\nline two\n'], 'stdin is forwarded, its end too')
    const byPath = await run(alice, '/bin/cat', '/proc/self/status')
    assert.match(byPath.stdout, /^Name:\s+cat$/m, 'a listed absolute path')
    const interrupted = await ztWithInput(mesh, ['script', 'run', 'agent-b', '--identity', alice, '--', 'sh', '-c', 'echo started; exec sleep 60'], '', 'started')
    assert.equal(interrupted.code, 130, `Ctrl-C here is SIGINT there (128 + 2): ${interrupted.stderr}`)

    const refusals: [string[], RegExp][] = [
      [['ls', '/'], /agent-b does not run "ls": it is not an allowed command\nTry this: allowed there: sh, \/bin\/cat, sleep, the executables of /],
      [['notes.txt'], /does not run "notes.txt"/],
      [['escape'], /does not run "escape"/],
      [['../outside.sh'], /does not run "\.\.\/outside\.sh"/],
    ]
    for (const [words, message] of refusals) {
      const refused = await run(alice, ...words)
      assert.equal(refused.code, 4, `${words.join(' ')}: ${refused.stderr}`)
      assert.match(refused.stderr, message)
    }

    const shell = await mesh.zt(['script', 'run', 'agent-b', '--identity', alice, '--shell', '--', 'echo $((1+2)) | cat'])
    assert.equal(shell.code, 4)
    assert.match(shell.stderr, /agent-b runs no shell command lines.*\nTry this: .*ztctl script config --agent agent-b --any-command/)
    const stranger = await run(bob, 'sh', '-c', 'echo hi')
    assert.equal(stranger.code, 4)
    assert.match(stranger.stderr, /refused identity "bob": identity "bob" is not allowed to use app\/script on agent-b/)

    // A policy is the second gate: an identity on the allow list that a DENY policy on app/script names is refused.
    const deny = await mesh.zt(['policy', 'create', 'no-scripts-for-alice', '--action', 'DENY', '--service', 'app/script', '--from', '@alice'])
    assert.equal(deny.code, 0, deny.stderr)
    assert.doesNotMatch(deny.stderr, /no agent has its script app on/, 'app/script is a service the mesh has')
    const denied = await run(alice, 'sh', '-c', 'echo hi')
    assert.equal(denied.code, 4, denied.stderr)
    assert.match(denied.stderr, /ZT_ERR_APP_DENIED.*refused identity "alice": a policy on agent-b denies identity "alice" app\/script\n.*ztctl policy list/)
    const deniedLine = await waitFor('the denial in agent-b\'s log', () => agentB.appLines(/^script session refused$/).find((line) => line.identity === 'alice' && /policy/.test(String(line.error))))
    assert.match(String(deniedLine.error), /policy rejection.*no-scripts-for-alice/)
    assert.equal((await mesh.zt(['policy', 'delete', 'no-scripts-for-alice'])).code, 0)
    const badApp = await mesh.zt(['policy', 'create', 'typo', '--action', 'DENY', '--service', 'app/shell'])
    assert.deepEqual([badApp.code, /"app\/shell" is not an app\nTry this: the apps are app\/file, app\/script, app\/terminal/.test(badApp.stderr)], [2, true], badApp.stderr)

    assert.equal((await mesh.zt(['script', 'config', '--agent', 'agent-b', '--any-command'])).code, 0)
    await agentB.waitForApp('script', (app) => app.anyCommand === true)
    const anything = await mesh.zt(['script', 'run', 'agent-b', '--identity', alice, '--shell', '--', 'echo $((1+2)) | cat; ls / > /dev/null && echo listed'])
    assert.deepEqual([anything.code, anything.stdout], [0, '3\nlisted\n'], 'a command line once the agent allows any command')

    // Every run is a line in the agent's log: who, what, how it ended.
    const ended = agentB.appLines(/^script session ended$/)
    assert.ok(ended.some((line) => line.identity === 'alice' && line.exitCode === 3 && JSON.stringify(line.argv) === JSON.stringify(['sh', '-c', 'echo "out $((6*7))"; echo "err $((6*8))" >&2; exit 3'])))
    assert.ok(ended.some((line) => line.signal === 'SIGINT'), 'the interrupted run ended by SIGINT')
    assert.ok(agentB.appLines(/^script session refused$/).some((line) => line.identity === 'bob'))
    await waitFor('no script left running', async () => (await agentB.configDump()).apps.find((app) => app.app === 'script')?.sessions === 0)
  })
}

test('script run --identity FILE renews that identity past half-life and writes it back, as a context\'s is', {timeout: 180_000}, async (t) => {
  const mesh = await startAppMesh(t, ['--cert-ttl', '30s'])
  const agentB = await mesh.agent('agent-b')
  const alice = await mesh.user('alice')
  assert.equal((await mesh.zt(['script', 'config', '--agent', 'agent-b', '--add-user', '@alice', '--add-command', 'sh'])).code, 0)
  await agentB.waitForApp('script')
  const before = await readIdentityFile(alice)
  await waitFor('alice\'s certificate to pass half-life', () => msUntilRenewal(before) < 0, 40_000)
  const result = await mesh.zt(['script', 'run', 'agent-b', '--identity', alice, '--', 'sh', '-c', 'echo "renewed $ZTCTL_IDENTITY"'])
  assert.deepEqual([result.code, result.stdout], [0, 'renewed alice\n'], result.stderr)
  const after = await readIdentityFile(alice)
  assert.notEqual(certInfo(after.cert).serial, certInfo(before.cert).serial, 'a new certificate was written to the file')
  assert.ok(msUntilRenewal(after) > 0, 'and it is fresh')
})

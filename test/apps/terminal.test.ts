// The terminal app end to end: a real controller, a real agent process, `ztctl terminal open` in a real
// terminal (tmux: send-keys, capture-pane, resize-window) — commands run in a PTY on the agent's host and
// their output comes back, the window size follows, Ctrl-C interrupts the remote job, the exit status is
// the command's, and every session (refused ones too) is a line in the agent's log.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test, type TestContext} from 'node:test'

import {RUN_JS} from '../helpers/controller.js'
import {requireTools} from '../helpers/tools.js'
import {waitFor} from '../proxy/helpers.js'
import {type AppMesh, startAppMesh} from './helpers.js'

interface Tmux {
  (...args: string[]): Promise<string>
  /** wait until the pane shows TEXT */
  screen(text: RegExp | string, timeoutMs?: number): Promise<string>
  /** the command's exit status once it ended */
  exitStatus(timeoutMs?: number): Promise<number>
}

/** A tmux server of our own (its own socket), killed at the end; the session runs COMMAND. */
async function tmuxSession(t: TestContext, mesh: AppMesh, command: string[], size = {columns: 100, rows: 30}): Promise<Tmux> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ztctl-tmux-'))
  const socket = path.join(dir, 'tmux.sock')
  const run = (...args: string[]): Promise<string> => new Promise((resolve, reject) => {
    execFile('tmux', ['-S', socket, '-f', '/dev/null', ...args], {env: {...mesh.ctl.env, TERM: 'xterm-256color'}, timeout: 10_000}, (error, stdout, stderr) => {
      if (error) reject(new Error(`tmux ${args.join(' ')}: ${stderr || error.message}`))
      else resolve(stdout)
    })
  })
  t.after(async () => {
    await run('kill-server').catch(() => {})
    await rm(dir, {force: true, recursive: true})
  })
  const quote = (word: string): string => `'${word.replaceAll("'", String.raw`'\''`)}'`
  // The pane's shell writes the command's exit status down: tmux 3.3 on a busy machine sometimes leaves a
  // pane's exited process unreaped (a zombie, pane_dead_status empty), so its own status cannot be trusted.
  const statusFile = path.join(dir, 'status')
  const script = `${command.map((word) => quote(word)).join(' ')}; echo $? > ${quote(statusFile)}.tmp && mv ${quote(statusFile)}.tmp ${quote(statusFile)}`
  await run('new-session', '-d', '-x', String(size.columns), '-y', String(size.rows), script, ';', 'set-option', '-g', 'remain-on-exit', 'on')
  const capture = (): Promise<string> => run('capture-pane', '-p', '-J')
  const withScreen = async (error: Error): Promise<never> => {
    throw new Error(`${error.message}\n--- screen ---\n${await capture()}`)
  }
  return Object.assign(run, {
    async exitStatus(timeoutMs = 15_000) {
      const status = await waitFor('the terminal command to exit', () => readFile(statusFile, 'utf8').catch(() => ''), timeoutMs).catch(withScreen)
      return Number(status.trim())
    },
    screen: (text: RegExp | string, timeoutMs = 15_000) => waitFor(`the screen to show ${text}`, async () => {
      const shown = await capture()
      return (typeof text === 'string' ? shown.includes(text) : text.test(shown)) ? shown : undefined
    }, timeoutMs).catch(withScreen),
  })
}

const terminalOpen = (agent: string, identity: string): string[] => [process.execPath, RUN_JS, 'terminal', 'open', agent, '--identity', identity]

test('terminal open: a shell in a PTY on the agent — output, window size, Ctrl-C, exit status, session log', {timeout: 180_000}, async (t) => {
  requireTools('tmux', 'script', 'stty')
  const mesh = await startAppMesh(t)
  const agentB = await mesh.agent('agent-b')
  const alice = await mesh.user('alice')
  const configured = await mesh.zt(['terminal', 'config', '--agent', 'agent-b', '--add-user', '@alice', '--shell', '/bin/sh'])
  assert.equal(configured.code, 0, configured.stderr)
  assert.match(configured.stdout, /App: terminal \(on\)\nShell: \/bin\/sh\nAllowed:\n {2}@alice/)
  const apps = await mesh.zt(['proxy-config', 'apps', 'agent-b'])
  assert.match(apps.stdout, /^file\s+off\s+-\s+0\s+-$/m, 'proxy-config shows which apps are on')
  assert.match(apps.stdout, /^script\s+off\s/m)
  assert.match(apps.stdout, /^terminal\s+on\s+@alice\s+0\s+shell \/bin\/sh$/m)

  const term = await tmuxSession(t, mesh, terminalOpen('agent-b', alice))
  // Typed into the local terminal, run over there: the arithmetic proves a shell evaluated it.
  await term('send-keys', 'echo "hi-$((6*7)) $ZTCTL_IDENTITY on $ZTCTL_AGENT"', 'Enter')
  await term.screen('hi-42 alice on agent-b')
  // The shell's PTY belongs to script(1), a child of the agent process itself.
  await term('send-keys', 'echo "pty-parent=$(awk \'/^PPid/{print $2}\' /proc/$PPID/status)"', 'Enter')
  await term.screen(`pty-parent=${agentB.pid}`)
  assert.equal((await agentB.configDump()).apps.find((app) => app.app === 'terminal')?.sessions, 1)

  await term('send-keys', 'stty size', 'Enter')
  await term.screen(/^30 100$/m)
  await term('resize-window', '-x', '87', '-y', '22')
  await waitFor('the remote PTY to take the new size', async () => {
    await term('send-keys', 'stty size', 'Enter')
    return term.screen(/^22 87$/m, 1000).catch(() => undefined)
  }, 15_000)

  // Ctrl-C reaches the remote foreground job through the PTY's line discipline, not the local client.
  await term('send-keys', 'sleep 300; echo "sleep-$((3*3))-done"', 'Enter')
  await new Promise((resolve) => setTimeout(resolve, 500))
  await term('send-keys', 'C-c')
  await term('send-keys', 'echo "after-ctrl-c-$((2+3))"', 'Enter')
  const screen = await term.screen('after-ctrl-c-5')
  assert.doesNotMatch(screen, /^sleep-9-done$/m)

  await term('send-keys', 'exit 7', 'Enter')
  assert.equal(await term.exitStatus(), 7, 'the remote exit status is the command\'s')
  const ended = await waitFor('the session line on agent-b', () => agentB.appLines(/^terminal session ended$/)[0])
  assert.equal(ended.identity, 'alice')
  assert.equal(ended.spiffe, 'spiffe://cluster.local/identity/alice')
  assert.equal(ended.exitCode, 7)
  assert.match(String(ended.source), /^127\.0\.0\.1:\d+$/)
  assert.ok(Number(ended.durationMs) > 500, 'how long it lasted')
  const started = agentB.appLines(/^terminal session started$/)[0]
  assert.deepEqual([started.identity, started.connection, started.shell], ['alice', ended.connection, ['/bin/sh']])
  assert.ok(Date.parse(String(started.time)) <= Date.parse(String(ended.time)))
})

test('terminal open: a refused identity gets a clear error and a line in the agent\'s log; switching the app off ends live sessions', {timeout: 180_000}, async (t) => {
  requireTools('tmux', 'script', 'stty')
  const mesh = await startAppMesh(t)
  const agentB = await mesh.agent('agent-b', {dataPath: 'node'})
  const [alice, bob] = await Promise.all([mesh.user('alice'), mesh.user('bob')])

  const off = await mesh.zt(['terminal', 'open', 'agent-b', '--identity', alice])
  assert.equal(off.code, 3, off.stderr)
  assert.match(off.stderr, /ZT_ERR_APP_OFF.*agent "agent-b" hosts no terminal app/)
  assert.match(off.stderr, /ztctl terminal config --agent agent-b --add-user @alice/)

  assert.equal((await mesh.zt(['terminal', 'config', '--agent', 'agent-b', '--add-user', '@alice'])).code, 0)
  await agentB.waitForApp('terminal')
  const refused = await mesh.zt(['terminal', 'open', 'agent-b', '--identity', bob])
  assert.equal(refused.code, 4, refused.stderr)
  assert.match(refused.stderr, /ZT_ERR_APP_FORBIDDEN.*agent agent-b refused identity "bob": identity "bob" is not allowed to use app\/terminal on agent-b/)
  assert.match(refused.stderr, /an admin adds you: `ztctl terminal config --agent agent-b --add-user @bob`/)
  const line = await waitFor('the refusal in agent-b\'s log', () => agentB.appLines(/^terminal session refused$/).find((entry) => entry.identity === 'bob'))
  assert.match(String(line.error), /identity "bob" is not in the allow list of app\/terminal \(@alice\)/)
  assert.equal(line.spiffe, 'spiffe://cluster.local/identity/bob')

  // A live session of an allowed identity ends when the app is switched off (its stream is re-checked).
  const term = await tmuxSession(t, mesh, terminalOpen('agent-b', alice))
  await term('send-keys', 'echo "live-$((40+2))"', 'Enter')
  await term.screen('live-42')
  const disabled = await mesh.zt(['terminal', 'config', '--agent', 'agent-b', '--disable'])
  assert.match(disabled.stdout, /App: terminal \(off\)/)
  assert.equal(await term.exitStatus(), 5, 'the client reports the lost connection (exit 5)')
  await term.screen(/the connection to agent agent-b ended before the shell exited/)
  await waitFor('the live session closed by the change', () => agentB.logs().includes('connection closed due to policy change'))
})

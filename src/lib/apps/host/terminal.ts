// The terminal app on the agent: the configured shell in a real pseudo-terminal, made by script(1) of
// util-linux (bsdutils): `script --command SHELL /dev/null` opens a PTY, makes it the shell's controlling
// terminal in a new session, copies our pipe to the PTY's master and the master to our pipe, and exits
// with the shell's status. The line discipline does the rest (echo, Ctrl-C → SIGINT to the foreground job).
// A window change is `stty -F <the session's pts> rows R cols C` (the kernel sends SIGWINCH). Why not
// node-pty: it has no Linux prebuild, and its install script's node-gyp downloads Node's headers, which
// fails offline (CI has only the npm registry); script(1) is on every Debian (bsdutils is Essential).
import {readFile, readlink} from 'node:fs/promises'
import {setTimeout as sleep} from 'node:timers/promises'

import {findTool, runTool} from '../../exec/tools.js'
import {FrameType} from '../wire.js'
import {feedChild, pumpOutput, waitForExit} from './process.js'
import {AppError, type AppRunner, sessionEnv} from './session.js'

/** Resizes wait for the shell's first output (its start-up `stty` has run by then), or this long. */
const FIRST_RESIZE_DELAY_MS = 1000

export const runTerminal: AppRunner<'terminal'> = async (channel, open, session, context, config) => {
  const script = await findTool('script').catch(() => {
    throw new AppError('ZT_ERR_APP_UNAVAILABLE', `the terminal app needs script(1) on ${context.agent}'s host, which is not installed`, 'install it there: apt-get install bsdutils')
  })
  const shell = config.shell && config.shell.length > 0 ? config.shell : [process.env.SHELL || '/bin/sh']
  // The size is set inside the PTY before the shell starts, so its first prompt already fits.
  const command = `stty rows ${open.rows} cols ${open.columns} 2>/dev/null; exec ${shell.map((arg) => shellQuote(arg)).join(' ')}`
  const {execa} = await import('execa')
  const child = execa(script, ['--quiet', '--return', '--echo', 'always', '--command', command, '/dev/null'], {
    buffer: false, cwd: process.env.HOME || '/', env: sessionEnv(session, context.agent, {TERM: open.term}), extendEnv: false, reject: false, stdin: 'pipe',
  })
  const startedAt = Date.now()
  channel.send(FrameType.Ready, {argv: shell})
  context.started({columns: open.columns, pid: child.pid, rows: open.rows, shell, term: open.term})
  const resizer = new PtyResizer(child.pid!, (error) => context.logger().debug({error: error.message, scope: 'app'}, 'terminal resize failed'))
  const firstOutput = (): void => resizer.unblock()
  child.stdout!.once('data', firstOutput)
  setTimeout(firstOutput, FIRST_RESIZE_DELAY_MS).unref()
  pumpOutput(child.stdout!, channel, FrameType.Stdout)
  pumpOutput(child.stderr!, channel, FrameType.Stdout) // script's own complaints go to the same screen
  // The client gone (or broken framing) while the shell runs: hang up, as a dropped line would.
  const inputError = feedChild(channel, child, {resize: (columns, rows) => resizer.resize(columns, rows)}, ['SIGKILL'])
  const {startError, ...exit} = await waitForExit(child, startedAt)
  channel.send(FrameType.Exit, exit)
  return {exitCode: exit.code, inputError: inputError(), signal: exit.signal, startError}
}

/** A POSIX shell word that stands for ARG exactly. */
export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", String.raw`'\''`)}'`
}

/**
 * Window changes for the PTY of one script(1) process: its child's stdin is the pts. Changes coalesce (one
 * `stty` at a time, then the latest size), and wait until the shell is up so its own start-up size does not win.
 */
class PtyResizer {
  private blocked = true
  private pts?: string
  private running = false
  private wanted?: {columns: number; rows: number}

  constructor(private readonly scriptPid: number, private readonly onError: (error: Error) => void) {}

  resize(columns: number, rows: number): void {
    this.wanted = {columns, rows}
    this.kick()
  }

  unblock(): void {
    this.blocked = false
    this.kick()
  }

  private kick(): void {
    if (this.blocked || this.running || !this.wanted) return
    this.running = true
    void this.apply().finally(() => {
      this.running = false
    })
  }

  private async apply(): Promise<void> {
    while (this.wanted) {
      const {columns, rows} = this.wanted
      this.wanted = undefined
      try {
        await runTool('stty', ['-F', await this.findPts(), 'rows', String(rows), 'cols', String(columns)], {timeoutMs: 5000})
      } catch (error) {
        this.onError(error as Error)
      }
    }
  }

  private async findPts(): Promise<string> {
    if (this.pts) return this.pts
    for (let attempt = 0; attempt < 40; attempt++) {
      const children = await readFile(`/proc/${this.scriptPid}/task/${this.scriptPid}/children`, 'utf8').catch(() => '')
      const child = children.trim().split(' ')[0]
      const link = child ? await readlink(`/proc/${child}/fd/0`).catch(() => '') : ''
      if (link.startsWith('/dev/pts/')) {
        this.pts = link
        return link
      }

      await sleep(50)
    }

    throw new Error(`the terminal of script(1) process ${this.scriptPid} was not found`)
  }
}

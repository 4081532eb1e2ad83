// The script app on the agent: one program per session, run without a shell unless the agent allows any
// command; its stdout and stderr come back as separate frames, the client's stdin goes in, the exit code
// goes out. What may run: an executable file of the configured script directory (by name), a listed
// command (an absolute path, or a name looked up on PATH), or anything when `anyCommand` is set.
import {constants as fsConstants} from 'node:fs'
import {access, realpath, stat} from 'node:fs/promises'
import path from 'node:path'

import type {AgentApp} from '../../config/types.js'
import {FrameType} from '../wire.js'
import type {ScriptOpen} from '../messages.js'
import {feedChild, pumpOutput, terminate, waitForExit} from './process.js'
import {AppError, type AppRunner, sessionEnv} from './session.js'

/** Signals a client may send its script (Ctrl-C on the client is INT). */
const SIGNALS = new Set(['HUP', 'INT', 'KILL', 'QUIT', 'TERM'])
/** After the client is gone: TERM, then KILL this much later. */
const KILL_GRACE_MS = 2000

export const runScript: AppRunner<'script'> = async (channel, open, session, context, config) => {
  const {args, file} = await resolveCommand(open, config, context.agent)
  const {execa} = await import('execa')
  const child = execa(file, args, {
    buffer: false, cwd: config.scriptDir ?? (process.env.HOME || '/'), env: sessionEnv(session, context.agent), extendEnv: false, reject: false, stdin: 'pipe',
  })
  const startedAt = Date.now()
  const argv = [file, ...args]
  channel.send(FrameType.Ready, {argv})
  context.started({argv, pid: child.pid})
  pumpOutput(child.stdout!, channel, FrameType.Stdout)
  pumpOutput(child.stderr!, channel, FrameType.Stderr)
  const signal = (name: string): void => void (SIGNALS.has(name) && terminate(child, `SIG${name}` as NodeJS.Signals))
  const inputError = feedChild(channel, child, {signal}, ['SIGTERM', 'SIGKILL'], KILL_GRACE_MS)
  const {startError, ...exit} = await waitForExit(child, startedAt)
  if (startError) channel.send(FrameType.Stderr, `ztctl: ${context.agent} could not start ${file}: ${startError}\n`)
  channel.send(FrameType.Exit, exit)
  return {argv, exitCode: exit.code, inputError: inputError(), signal: exit.signal, startError}
}

/** The program to run for OPEN under CONFIG, or the AppError that says why not. */
export async function resolveCommand(open: ScriptOpen, config: AgentApp, agent: string): Promise<{args: string[]; file: string}> {
  if (open.shell !== undefined) {
    if (!config.anyCommand) {
      throw new AppError('ZT_ERR_APP_FORBIDDEN', `${agent} runs no shell command lines: its script app allows only the listed commands`, `run one of them, or an admin allows any command: ztctl script config --agent ${agent} --any-command`)
    }

    return {args: ['-c', open.shell], file: '/bin/sh'}
  }

  const [program, ...args] = open.argv
  const inScripts = config.scriptDir ? await scriptIn(config.scriptDir, program) : undefined
  if (inScripts) return {args, file: inScripts}
  const listed = (config.commands ?? []).find((allowed) => allowed === program || (!program.includes('/') && allowed.startsWith('/') && path.basename(allowed) === program))
  if (listed) return {args, file: listed}
  if (config.anyCommand) return {args, file: program}
  const allowed = [...(config.commands ?? []), ...(config.scriptDir ? [`the executables of ${config.scriptDir}`] : [])]
  throw new AppError('ZT_ERR_APP_FORBIDDEN', `${agent} does not run "${program}": it is not an allowed command`, allowed.length > 0
    ? `allowed there: ${allowed.join(', ')}`
    : `no command is allowed there yet; an admin adds one: ztctl script config --agent ${agent} --add-command ${program}`)
}

/** DIR/NAME when it is an executable regular file that really lies inside DIR (no `..`, no symlink out). */
async function scriptIn(dir: string, name: string): Promise<string | undefined> {
  const candidate = path.isAbsolute(name) ? name : path.join(dir, name)
  try {
    const [root, real] = await Promise.all([realpath(dir), realpath(candidate)])
    if (!real.startsWith(root + path.sep)) return undefined
    if (!(await stat(real)).isFile()) return undefined
    await access(real, fsConstants.X_OK)
    return real
  } catch {
    return undefined
  }
}

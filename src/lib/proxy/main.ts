// The agent daemon's own entry point: `ztctl agent run` parses and checks its flags with oclif, then
// execs `node main.js` in its place (same PID, same stdio) with the options as JSON in
// ZTCTL_AGENT_OPTIONS, so the long-running agent carries neither oclif nor the CLI's other modules.
// A startup failure is reported the way the command reports it: a ZtError as its message and
// "Try this: …" on stderr (or {"error": …} with --json) and its exit code; anything else is a bug
// and prints its stack. No oclif or chalk here.
import module from 'node:module'

import {ExitCode, ZtError} from '../errors.js'
import {DAEMON_OPTIONS_ENV, type DaemonOptions, runDaemon} from './launch.js'

module.enableCompileCache?.()
// As under oclif: a closed stdout or stderr (`| head`, a supervisor gone) is not a crash. An unhandled
// EPIPE here would end in pino's exit hook, which retries the unwritable log line forever.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error
  })
}

function readOptions(): DaemonOptions {
  const text = process.env[DAEMON_OPTIONS_ENV]
  // Children (iptables, nft) need not see it.
  delete process.env[DAEMON_OPTIONS_ENV]
  if (text === undefined) {
    throw new ZtError('ZT_ERR_USAGE', `${DAEMON_OPTIONS_ENV} is not set: this is the agent daemon's entry point, started by \`ztctl agent run\``, {
      exit: ExitCode.usage,
      suggestion: 'Run `ztctl agent run -i IDENTITY.json` instead.',
    })
  }

  try {
    return JSON.parse(text) as DaemonOptions
  } catch (error) {
    throw new ZtError('ZT_ERR_USAGE', `${DAEMON_OPTIONS_ENV} is not valid JSON: ${(error as Error).message}`, {exit: ExitCode.usage})
  }
}

function colour(code: number, text: string): string {
  return process.stderr.isTTY && !process.env.NO_COLOR ? `\u001B[${code}m${text}\u001B[39m` : text
}

function report(error: unknown, json: boolean): void {
  if (ZtError.is(error)) {
    process.exitCode = error.exit
    if (json) {
      process.stdout.write(JSON.stringify({error: error.toJSON()}, null, 2) + '\n')
      return
    }

    const lines = [`${colour(31, 'Error')} (${error.code}): ${error.message}`]
    if (error.suggestion) lines.push(`${colour(33, 'Try this:')} ${error.suggestion}`)
    process.stderr.write(lines.join('\n') + '\n')
    return
  }

  process.exitCode = ExitCode.failure
  process.stderr.write(`${colour(31, 'Internal error')} (a bug in ztctl; please report it with this output):\n`)
  process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`)
}

let json = false
try {
  const options = readOptions()
  json = options.json === true
  await runDaemon(options)
} catch (error) {
  // The agent closed what it had opened: the process ends with the exit code set here.
  report(error, json)
}

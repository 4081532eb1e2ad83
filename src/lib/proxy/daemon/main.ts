// The agent daemon's own entry point: `ztctl agent run` parses and checks its flags with oclif, then
// execs `node main.js` in its place (same PID, same stdio) with the options as JSON in
// ZTCTL_AGENT_OPTIONS, so the long-running agent carries neither oclif nor the CLI's other modules.
// A startup failure is reported the way the command reports it: a ZtError as its message and
// "Try this: …" on stderr (or {"error": …} with --json) and its exit code; anything else is a bug
// and prints its stack (the CLI's own words: error-text.ts). No oclif here.
import module from 'node:module'

import {errorText} from '../../error-text.js'
import {ExitCode, ZtError} from '../../errors.js'
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

function report(error: unknown, json: boolean): void {
  process.exitCode = ZtError.is(error) ? error.exit : ExitCode.failure
  if (json && ZtError.is(error)) process.stdout.write(JSON.stringify({error: error.toJSON()}, null, 2) + '\n')
  else process.stderr.write(errorText(error) + '\n')
}

let json = false
try {
  const options = readOptions()
  json = options.json === true
  // Ctrl-C: 130, as every ztctl command (README "Exit codes"); SIGTERM is an orderly stop (0).
  if ((await runDaemon(options)) === 'SIGINT') process.exitCode = ExitCode.interrupted
} catch (error) {
  // The agent closed what it had opened: the process ends with the exit code set here.
  report(error, json)
}

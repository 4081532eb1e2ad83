// Long-running commands (controller run, quickstart, --watch, logs -f) stop on SIGINT or SIGTERM and
// exit as the README says: 130 after Ctrl-C (SIGINT, the shell's 128 + 2), 0 after a SIGTERM (a
// supervisor's orderly stop).
import {ExitCode} from '../errors.js'

/** Resolves with the first SIGINT/SIGTERM; sets the exit code for it. Later signals are oclif's again. */
export function untilStopped(): Promise<'SIGINT' | 'SIGTERM'> {
  return new Promise((resolve) => {
    const on = (signal: 'SIGINT' | 'SIGTERM') => (): void => {
      process.off('SIGINT', onInt)
      process.off('SIGTERM', onTerm)
      if (signal === 'SIGINT') process.exitCode = ExitCode.interrupted
      resolve(signal)
    }

    const onInt = on('SIGINT')
    const onTerm = on('SIGTERM')
    process.on('SIGINT', onInt)
    process.on('SIGTERM', onTerm)
  })
}

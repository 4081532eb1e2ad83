import {EventEmitter} from 'node:events'

import {Args, Flags} from '@oclif/core'

import {identityFlag} from '../../lib/cli/app-command.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {ExitCode, ZtError} from '../../lib/errors.js'

export default class ScriptRun extends BaseCommand<typeof ScriptRun> {
  static override args = {agent: Args.string({description: 'the agent whose host runs the command', required: true})}
  static override description = `Run a program on AGENT's host — one AGENT allows (\`ztctl script config\`) — with its stdout and stderr streamed back separately, this command's stdin forwarded, and its exit status as this command's. Ctrl-C sends it SIGINT (a second one gives up waiting).

Put the program and its arguments after --. With --shell, the words after -- are one command line for /bin/sh -c, which AGENT runs only when it allows any command.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> agent-b -- uname -a',
    '<%= config.bin %> <%= command.id %> agent-b -- backup.sh --full < list.txt',
    "<%= config.bin %> <%= command.id %> agent-b --shell -- 'df -h | sort -k5'",
  ]

  static override flags = {
    ...identityFlag,
    'no-stdin': Flags.boolean({char: 'n', description: 'send no input (the program reads end-of-file at once)'}),
    shell: Flags.boolean({description: 'the words after -- are one shell command line (AGENT must allow any command)'}),
  }

  static override strict = false
  static override summary = 'Run a command on an agent\'s host'

  async run() {
    const separator = this.argv.indexOf('--')
    const words = separator === -1 ? [] : this.argv.slice(separator + 1)
    if (words.length === 0) {
      throw new ZtError('ZT_ERR_USAGE', 'no command to run was given', {exit: ExitCode.usage, suggestion: `put it after --: ztctl script run ${this.args.agent} -- uname -a`})
    }

    const {runRemoteScript} = await import('../../lib/apps/client/script.js')
    const {exitStatus} = await import('../../lib/apps/client/process-io.js')
    const signals = new EventEmitter()
    let interrupts = 0
    const onInterrupt = (): void => {
      if (++interrupts > 1) process.exit(130)
      signals.emit('signal', 'INT')
    }

    process.on('SIGINT', onInterrupt)
    try {
      const result = await runRemoteScript({
        agent: this.args.agent, argv: this.flags.shell ? ['sh'] : words, context: this.flags.context, home: this.home, identityFile: this.flags.identity,
        io: {signals, stderr: process.stderr, stdin: this.flags['no-stdin'] ? undefined : process.stdin, stdout: process.stdout},
        shell: this.flags.shell ? words.join(' ') : undefined,
      })
      process.exitCode = exitStatus(result)
    } finally {
      process.off('SIGINT', onInterrupt)
    }
  }
}

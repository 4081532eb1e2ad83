import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../lib/cli/base-command.js'

export default class Logs extends BaseCommand<typeof Logs> {
  static override args = {
    agent: Args.string({description: 'name of a local agent (found through its ready file in $ZTCTL_HOME/agents/); default: the agent at --admin'}),
  }
  static override description = 'The agent\'s recent log lines (it keeps the last 2000 in memory), then with -f every new one until Ctrl-C (kubectl logs -f style). Readable lines on a terminal; JSON lines otherwise or with -o json.'
  static override enableJsonFlag = false
  static override examples = ['<%= config.bin %> <%= command.id %> agent-a', '<%= config.bin %> <%= command.id %> agent-a -f', '<%= config.bin %> <%= command.id %> --admin 127.0.0.1:15000 --tail 20 -o json | jq .message']
  static override flags = {
    admin: Flags.string({description: 'admin address of the agent (HOST:PORT)'}),
    follow: Flags.boolean({char: 'f', description: 'keep printing new lines until Ctrl-C'}),
    tail: Flags.integer({default: 100, description: 'how many recent lines to print first', max: 100_000, min: 0}),
  }
  static override summary = 'Print an agent\'s logs'

  async run(): Promise<void> {
    const [{readAgentLogs}, {prettyLogLine}] = await Promise.all([import('../lib/inspect/agent-logs.js'), import('../lib/cli/log-lines.js')])
    const pretty = this.format === 'table' && process.stdout.isTTY === true
    const stop = new AbortController()
    if (this.flags.follow) {
      const {untilStopped} = await import('../lib/cli/signals.js')
      void untilStopped().then(() => stop.abort())
    }

    await readAgentLogs({admin: this.flags.admin, agent: this.args.agent, home: this.home}, {follow: this.flags.follow, signal: this.flags.follow ? stop.signal : undefined, tail: this.flags.tail}, (line) => {
      process.stdout.write((pretty ? prettyLogLine(line) : typeof line === 'string' ? line : JSON.stringify(line)) + '\n')
    })
  }
}

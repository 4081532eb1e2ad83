import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {LOG_LEVELS} from '../../lib/cli/flag-groups.js'
import {ProxyConfigCommand, proxyConfigAliases} from '../../lib/cli/proxy-config-command.js'

export default class ProxyConfigLog extends BaseCommand<typeof ProxyConfigLog> {
  static override args = {agent: Args.string({description: ProxyConfigCommand.args.agent.description})}
  static override description = "Show or set the agent's log level at run time (istioctl proxy-config log style), through its admin port's /logging"
  static override examples = ['<%= config.bin %> <%= command.id %> agent-a', '<%= config.bin %> <%= command.id %> agent-a --level debug', '<%= config.bin %> <%= command.id %> --admin 127.0.0.1:15000 --level info']
  static override flags = {
    admin: Flags.string({description: 'admin address of the agent (HOST:PORT)'}),
    level: Flags.option({description: 'the new level (without it: print the current one)', options: LOG_LEVELS})(),
  }
  static override hiddenAliases = proxyConfigAliases('log', 'logging')

  async run() {
    const {agentLogLevel} = await import('../../lib/inspect/agent-logs.js')
    const result = await agentLogLevel({admin: this.flags.admin, agent: this.args.agent, home: this.home}, this.flags.level)
    return this.render(result, () => `${this.args.agent ?? 'agent'} log level: ${result.level}`)
  }
}

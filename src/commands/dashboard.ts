import {Flags} from '@oclif/core'
import chalk from 'chalk'

import {BaseCommand} from '../lib/cli/base-command.js'
import {controllerFlags} from '../lib/cli/flag-groups.js'
import {untilStopped} from '../lib/cli/signals.js'
import {ExitCode, ZtError} from '../lib/errors.js'

export default class Dashboard extends BaseCommand<typeof Dashboard> {
  static override description = `Serves a local page of the mesh from this process, which holds the current context's admin identity (the browser never does): a live graph of agents, tunnels and traffic with refusals, the connections of every local agent with their SPIFFE IDs, identities (revoke), policies (create, delete, explain) and sync status. Only the browser that opens the printed URL (it carries a one-run token) gets in. Loopback only, unless --allow-remote. Runs until Ctrl-C.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> --open',
    '<%= config.bin %> <%= command.id %> --listen 127.0.0.1:0',
    '<%= config.bin %> <%= command.id %> --agent-admin edge-1=127.0.0.1:25000',
  ]
  static override flags = {
    ...controllerFlags,
    'agent-admin': Flags.string({description: 'NAME=HOST:PORT of an agent admin port to read beyond the local ones (repeatable)', multiple: true}),
    'allow-remote': Flags.boolean({description: 'allow a --listen address that is not loopback (whoever gets the URL acts as admin)'}),
    listen: Flags.string({default: '127.0.0.1:15080', description: '[IP:]PORT to serve on; port 0 for any free one'}),
    open: Flags.boolean({description: 'open the page in the default browser'}),
  }
  static override summary = 'The mesh as a live web page: graph, connections, identities, policies, sync'

  async run() {
    const [{startDashboardForContext}, {openInBrowser}] = await Promise.all([import('../lib/dashboard/start.js'), import('../lib/dashboard/open.js')])
    const agentAdmins = Object.fromEntries((this.flags['agent-admin'] ?? []).map((entry) => parseAgentAdmin(entry)))
    let lastProblem = ''
    await this.withController(async (api) => {
      const dashboard = await startDashboardForContext({
        agentAdmins, allowRemote: this.flags['allow-remote'], api, context: this.flags.context, home: this.home, listen: this.flags.listen,
        onError: (error) => {
          const text = ZtError.is(error) ? error.message : (error as Error).stack ?? String(error)
          if (text !== lastProblem) this.logToStderr(chalk.yellow(`dashboard: ${text}`))
          lastProblem = text
        },
      })
      if (this.jsonEnabled()) this.logJson({address: dashboard.address, url: dashboard.url})
      else this.log(`${chalk.green('✔')} ztctl dashboard: ${chalk.bold(dashboard.url)}\n  Open it in a browser on this machine (the token is for this run only). Ctrl-C to stop.`)
      if (this.flags.open) await openInBrowser(dashboard.url).catch((error: Error) => this.logToStderr(chalk.yellow(`could not open a browser (${error.message}): open the URL yourself`)))
      await untilStopped()
      await dashboard.close()
    })
  }
}

function parseAgentAdmin(entry: string): [string, string] {
  const match = /^([a-z0-9][a-z0-9._-]{0,62})=(\S+:\d+)$/.exec(entry)
  if (!match) {
    throw new ZtError('ZT_ERR_USAGE', `--agent-admin "${entry}" is not NAME=HOST:PORT`, {exit: ExitCode.usage, suggestion: 'e.g. --agent-admin agent-a=127.0.0.1:15000'})
  }

  return [match[1], match[2]]
}

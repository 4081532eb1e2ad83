import path from 'node:path'

import {Flags} from '@oclif/core'
import chalk from 'chalk'

import {BaseCommand} from '../lib/cli/base-command.js'
import {untilStopped} from '../lib/cli/signals.js'
import type {Quickstart as RunningQuickstart} from '../lib/quickstart/quickstart.js'

export default class Quickstart extends BaseCommand<typeof Quickstart> {
  static override description = `Starts a controller and two agents on free loopback ports in a temporary home (or --dir), enrolls the agents, puts a small demo HTTP service behind an outbound tunnel on agent-b, opens an inbound tunnel to it on agent-a, checks it end to end, prints what to curl and what to try next, and runs until Ctrl-C (exit 130). Needs no privileges.`
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --dir ./mesh --port 8080']
  static override flags = {
    dashboard: Flags.boolean({allowNo: true, default: true, description: 'serve the dashboard (`ztctl dashboard`) on a free loopback port too'}),
    dir: Flags.string({description: 'keep the whole mesh (keys, store, logs) in this folder; default a temporary folder removed on exit'}),
    port: Flags.integer({description: 'local port of the inbound tunnel (default any free port)', max: 65_535, min: 1}),
  }
  static override summary = 'A working mesh on this machine in one command'

  async run() {
    const {startQuickstart} = await import('../lib/quickstart/quickstart.js')
    const mesh = await startQuickstart({
      cli: {entry: path.join(this.config.root, 'bin', 'run.js'), node: process.execPath},
      dashboard: this.flags.dashboard,
      dir: this.flags.dir,
      port: this.flags.port,
      // Progress goes to stderr, so `--json` output on stdout stays one document.
      progress: (step) => process.stderr.write(chalk.dim(`- ${step}`) + '\n'),
      version: this.config.version,
    })
    const summary = {agents: mesh.agents, controller: mesh.controller, dashboard: mesh.dashboard, demo: mesh.demo, home: mesh.home}
    // Printed now, not on return: the command runs until Ctrl-C.
    if (this.jsonEnabled()) this.logJson(summary)
    else await this.render(summary, () => runningText(mesh))
    await untilStopped()
    process.stderr.write(chalk.dim('- stopping') + '\n')
    await mesh.stop()
  }
}

/** What runs, what to curl and what to try next. */
function runningText(mesh: RunningQuickstart): string {
  const [a] = mesh.agents
  return [
    `${chalk.green('✔')} ztctl quickstart is running (controller ${mesh.controller.url}, agents ${mesh.agents.map((x) => x.name).join(' and ')})`,
    '',
    `  Try it:   curl ${mesh.demo.url}`,
    `            (agent-a listens there and carries the connection as HBONE to agent-b, which hosts ${mesh.demo.service} → ${mesh.demo.target})`,
    ...(mesh.dashboard ? [`  See it:   ${mesh.dashboard.url}`, '            (the mesh as a live graph: traffic, refusals, identities, policies; this URL holds a one-run token)'] : []),
    '',
    '  In another terminal:',
    `    export ZTCTL_HOME=${mesh.home}`,
    '    ztctl tunnel list',
    '    ztctl proxy-status',
    '    ztctl proxy-config all agent-a',
    '    ztctl dashboard --open                                          # the same page, from another terminal',
    '    ztctl policy create deny-demo --action DENY --service tcp/demo   # the curl is now refused',
    '    ztctl policy explain --from @agent-a --to tcp/demo               # and why',
    `    curl -s http://${a.addresses.metrics}/metrics | grep istio_tcp`,
    '',
    `  Home: ${mesh.home}${mesh.keep ? '' : ' (removed on exit)'}   Logs: ${path.join(mesh.home, 'logs')}`,
    '  Press Ctrl-C to stop.',
  ].join('\n')
}

import {Flags} from '@oclif/core'
import chalk from 'chalk'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags} from '../../lib/cli/flag-groups.js'
import type {Explanation} from '../../lib/mesh/explain.js'

const MARK = {allow: chalk.green('✔'), deny: chalk.red('✘'), pass: chalk.dim('·')} as const

export default class PolicyExplain extends BaseCommand<typeof PolicyExplain> {
  static override description = `Runs the agents' own decision (DENY first, then ALLOW, then the default) on the controller's current configuration, for every agent that hosts the service, and shows each check it made: the tunnel's allow list, every policy in name order, and which one decided.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> --from @agent-a --to tcp/demo',
    '<%= config.bin %> <%= command.id %> --from @web-client --to tcp/web:8080 --source-ip 10.0.0.5',
    '<%= config.bin %> <%= command.id %> --from sa:default/web --to tcp/db -o json',
  ]
  static override flags = {
    ...controllerFlags,
    from: Flags.string({description: 'the source: @IDENTITY, sa:NAMESPACE/ACCOUNT or spiffe://…', required: true}),
    'source-ip': Flags.string({description: "the source address the hosting agent sees (for source-CIDR policies); default the source agent's HBONE address"}),
    to: Flags.string({description: 'the destination: tcp/NAME, or tcp/NAME:PORT for one target port (default every target port)', required: true}),
  }
  static override summary = 'Why a connection would be allowed or denied, and by which policy'

  async run() {
    const {explainPolicy} = await import('../../lib/mesh/explain.js')
    const {from, 'source-ip': sourceIp, to} = this.flags
    const result = await this.withController((api) => explainPolicy(api, {from, sourceIp, to}))
    return this.render(result, () => renderExplanation(result))
  }
}

function renderExplanation(result: Explanation): string {
  const {source} = result
  const who = source.identity ? `@${source.identity} (${source.spiffe}${source.roles.length > 0 ? `, roles ${source.roles.join(', ')}` : ''})` : source.spiffe
  const lines = [`From ${who}${source.address ? ` at ${source.address}` : ''}`, `To   ${result.service}`]
  for (const verdict of result.verdicts) {
    const headline = verdict.decision.allowed ? chalk.green(verdict.summary) : chalk.red(verdict.summary)
    lines.push('', `${verdict.agent}, port ${verdict.port}: ${headline}`)
    for (const step of verdict.steps) lines.push(`  ${MARK[step.verdict]} ${step.text}`)
  }

  for (const note of result.notes) lines.push('', chalk.yellow(`Note: ${note}`))
  return lines.join('\n')
}

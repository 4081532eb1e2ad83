import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags, dryRunFlags, waitFlags} from '../../lib/cli/flag-groups.js'
import {dryRunText} from '../../lib/cli/render.js'
import {describeOutcome} from '../../lib/mesh/rollout.js'
import {configureExit} from '../../lib/mesh/proxy.js'

export default class ProxyConfig extends BaseCommand<typeof ProxyConfig> {
  static override description = `Make AGENT a proxy exit, or change one: it dials the targets that match --add-target (CIDRs, addresses, host names, *.suffix, or * for every name) and none of its exclusions; names are resolved by AGENT, so cluster names work from outside the cluster. With several exits the most specific match wins (an exact name over *.suffix, a longer prefix over a shorter one). L4 policies apply with the service "proxy"; --allow narrows who may use this exit. An exit left without targets is removed.`
  static override examples = [
    "<%= config.bin %> <%= command.id %> --agent cluster-gw --add-target '*.svc.cluster.local' --add-target 10.96.0.0/12",
    '<%= config.bin %> <%= command.id %> --agent cluster-gw --exclude 10.96.0.1 --exclude kubernetes.default.svc.cluster.local',
    "<%= config.bin %> <%= command.id %> --agent office --add-target 192.168.0.0/16 --allow '#staff'",
  ]
  static override flags = {
    ...controllerFlags,
    ...waitFlags,
    ...dryRunFlags,
    'add-target': Flags.string({description: 'a target pattern this exit serves (repeatable)', multiple: true}),
    agent: Flags.string({description: 'identity name of the exit agent', required: true}),
    allow: Flags.string({description: 'only these may use this exit: @IDENTITY or #ROLE (repeatable; replaces the list; default any mesh identity, policies still apply)', multiple: true}),
    clear: Flags.boolean({description: 'start from an empty exit (targets, exclusions and allow list)'}),
    exclude: Flags.string({description: 'a pattern this exit never dials, even when a target matches (repeatable); an excluded CIDR also refuses names resolving into it', multiple: true}),
    'remove-exclusion': Flags.string({description: 'an exclusion to drop (repeatable)', multiple: true}),
    'remove-target': Flags.string({description: 'a target to drop (repeatable)', multiple: true}),
  }
  static override summary = 'Configure a proxy exit: its targets, exclusions and who may use it'

  async run() {
    const {agent} = this.flags
    const result = await this.withController((api) => configureExit(api, {
      addExclusions: this.flags.exclude, addTargets: this.flags['add-target'], agent, allow: this.flags.allow, clear: this.flags.clear,
      removeExclusions: this.flags['remove-exclusion'], removeTargets: this.flags['remove-target'],
    }, this.changeOptions))
    return this.render(result, () => {
      if (result.dryRun) return dryRunText(result.dryRun)
      if (result.removed) return `${agent} is no proxy exit any more (${describeOutcome(result)})`
      const exit = result.exit!
      return [
        `exit ${agent} (${describeOutcome(result)})`,
        `Targets:\n${exit.targets.map((target) => `  ${target}`).join('\n')}`,
        `Exclusions:\n${exit.exclusions.map((target) => `  ${target}`).join('\n') || '  (none)'}`,
        `Allow:\n${exit.allow.map((subject) => `  ${subject}`).join('\n') || '  (any identity of the mesh; policies apply)'}`,
      ].join('\n')
    })
  }
}

import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags, dryRunFlags, waitFlags} from '../../lib/cli/flag-groups.js'
import {dryRunText} from '../../lib/cli/render.js'
import {describeOutcome} from '../../lib/mesh/rollout.js'
import {closeProxy} from '../../lib/mesh/proxy.js'

export default class ProxyClose extends BaseCommand<typeof ProxyClose> {
  static override description = "Remove AGENT's proxy listener; open connections continue until they end."
  static override examples = ['<%= config.bin %> <%= command.id %> --agent laptop']
  static override flags = {
    ...controllerFlags,
    ...waitFlags,
    ...dryRunFlags,
    agent: Flags.string({description: 'identity name of the agent', required: true}),
  }
  static override summary = 'Close a proxy listener'

  async run() {
    const result = await this.withController((api) => closeProxy(api, this.flags.agent, this.changeOptions))
    return this.render(result, () => result.dryRun ? dryRunText(result.dryRun) : `proxy listener on ${this.flags.agent} closed (${describeOutcome(result)})`)
  }
}

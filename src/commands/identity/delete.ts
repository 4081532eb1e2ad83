import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags, waitFlags} from '../../lib/cli/flag-groups.js'

export default class IdentityDelete extends BaseCommand<typeof IdentityDelete> {
  static override args = {name: Args.string({description: 'identity name', required: true})}
  static override description = 'Delete an identity: the controller refuses it at once and every connected agent drops its connections (the command waits for them). The last admin cannot be deleted; deleting the identity of your own context asks first (--yes skips the question, and is required without a terminal).'
  static override examples = ['<%= config.bin %> identity delete web', '<%= config.bin %> identity delete old-admin --yes']
  static override flags = {
    ...controllerFlags,
    ...waitFlags,
    yes: Flags.boolean({char: 'y', description: 'do not ask before deleting the identity this context uses'}),
  }

  async run(): Promise<unknown> {
    const {deleteIdentity} = await import('../../lib/client/identities.js')
    const {name} = this.args
    const confirmSelf = process.stdin.isTTY && process.stdout.isTTY
      ? async () => (await import('@inquirer/prompts')).confirm({default: false, message: `"${name}" is the identity this context uses; delete it and lose access through this context?`})
      : undefined
    const deleted = await deleteIdentity({
      confirmSelf, context: this.flags.context, home: this.home, name, waitMs: this.changeOptions.waitMs, yes: this.flags.yes,
    })
    const dropped = deleted.rollout ? `; dropped by ${deleted.rollout.agents.map((agent) => agent.agent).join(', ') || 'no connected agent'}` : ''
    return this.render(deleted, () => `Identity ${deleted.identity.name} deleted; ${deleted.revokedSerials.length} certificate(s) revoked${dropped}`)
  }
}

import {Args} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags} from '../../lib/cli/flag-groups.js'

export default class IdentityDelete extends BaseCommand<typeof IdentityDelete> {
  static override args = {name: Args.string({description: 'identity name', required: true})}
  static override description = 'Delete an identity: the controller refuses it at once and agents drop its connections'
  static override examples = ['<%= config.bin %> identity delete web']
  static override flags = {...controllerFlags}

  async run(): Promise<unknown> {
    const {deleteIdentity} = await import('../../lib/client/identities.js')
    const deleted = await deleteIdentity({context: this.flags.context, home: this.home, name: this.args.name})
    return this.render(deleted, () => `Identity ${deleted.identity.name} deleted; ${deleted.revokedSerials.length} certificate(s) revoked`)
  }
}

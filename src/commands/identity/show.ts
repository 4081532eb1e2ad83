import {Args} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags} from '../../lib/cli/flag-groups.js'

export default class IdentityShow extends BaseCommand<typeof IdentityShow> {
  static override args = {name: Args.string({description: 'identity name', required: true})}
  static override description = 'Show one identity'
  static override examples = ['<%= config.bin %> identity show web', '<%= config.bin %> identity show web -o json']
  static override flags = {...controllerFlags}

  async run(): Promise<unknown> {
    const {showIdentity} = await import('../../lib/client/identities.js')
    const identity = await showIdentity({context: this.flags.context, home: this.home, name: this.args.name})
    return this.render(identity, () => [
      `Name:        ${identity.name}`,
      `ID:          ${identity.id}`,
      `SPIFFE ID:   ${identity.spiffe}`,
      `Status:      ${identity.status}`,
      `Roles:       ${identity.roles.map((role) => `#${role}`).join(', ') || '-'}`,
      `Admin:       ${identity.admin ? 'yes' : 'no'}`,
      ...(identity.scope?.serves ? [`Serves:      ${identity.scope.serves.join(', ')}`, `Pod CIDRs:   ${identity.scope.podCidrs?.join(', ') || '-'}`] : []),
      ...(identity.scope?.node ? [`Node:        ${identity.scope.node}`] : []),
      `Created:     ${identity.createdAt}`,
      identity.enrolledAt ? `Enrolled:    ${identity.enrolledAt}` : `Token until: ${identity.tokenExpiresAt}`,
    ].join('\n'))
  }
}

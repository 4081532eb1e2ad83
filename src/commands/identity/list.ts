import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags} from '../../lib/cli/flag-groups.js'
import {formatAge} from '../../lib/cli/render.js'

export default class IdentityList extends BaseCommand<typeof IdentityList> {
  static override hiddenAliases = ['identity:ls']
  static override description = 'List the identities of the mesh (revoked ones are gone)'
  static override examples = ['<%= config.bin %> identity list', '<%= config.bin %> identity list -o yaml']
  static override flags = {...controllerFlags}

  async run(): Promise<unknown> {
    const {listIdentities} = await import('../../lib/client/identities.js')
    const identities = await listIdentities({context: this.flags.context, home: this.home})
    return this.render(identities, () => this.table(identities, [
      {header: 'NAME', value: (identity) => identity.name},
      {header: 'ID', value: (identity) => identity.id},
      {header: 'STATUS', value: (identity) => identity.status},
      {header: 'ROLES', value: (identity) => identity.roles.map((role) => `#${role}`).join(',')},
      {header: 'ADMIN', value: (identity) => (identity.admin ? 'yes' : 'no')},
      {header: 'AGE', value: (identity) => formatAge(Date.parse(identity.createdAt))},
    ]))
  }
}

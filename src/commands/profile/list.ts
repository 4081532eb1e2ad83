import {BaseCommand} from '../../lib/cli/base-command.js'

export default class ProfileList extends BaseCommand<typeof ProfileList> {
  static override description = 'List the installation profiles (`ztctl install --profile NAME`)'
  static override examples = ['<%= config.bin %> profile list']

  async run(): Promise<unknown> {
    const {DEFAULT_PROFILE, PROFILES} = await import('../../lib/kube/manifest/profiles.js')
    const rows = PROFILES.map((profile) => ({default: profile.name === DEFAULT_PROFILE, description: profile.description, name: profile.name}))
    return this.render(rows, () => this.table(rows, [
      {header: 'NAME', value: (row) => row.name + (row.default ? ' (default)' : '')},
      {header: 'DESCRIPTION', value: (row) => row.description},
    ]))
  }
}

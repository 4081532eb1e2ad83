import {BaseCommand} from '../lib/cli/base-command.js'
import {controllerFlags} from '../lib/cli/flag-groups.js'
import {type VersionData, versionText} from '../lib/cli/version-fast-path.js'

// bin/run.js answers `version` (no context, table or JSON) from version-fast-path.ts without oclif;
// test/cli/version-fast-path.test.ts holds both to the same bytes.
export default class Version extends BaseCommand<typeof Version> {
  static override description = 'Show the client version, and the controller version when one is reachable'
  static override examples = ['<%= config.bin %> version', '<%= config.bin %> version --json']
  static override flags = {...controllerFlags}

  async run(): Promise<VersionData> {
    const {probeControllerVersion} = await import('../lib/client/identities.js')
    // Bounded at about a second: `version` must answer even when no controller does.
    const controller = await probeControllerVersion({context: this.flags.context, home: this.home, timeoutMs: 1000})
    const data: VersionData = {client: {node: process.version, version: this.config.version}, controller}
    return this.render(data, () => versionText(data))
  }
}

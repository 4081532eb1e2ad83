import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags, dryRunFlags, waitFlags} from '../../lib/cli/flag-groups.js'
import {dryRunText} from '../../lib/cli/render.js'

export default class FilePublish extends BaseCommand<typeof FilePublish> {
  static override args = {path: Args.string({description: "the file's path on AGENT's host (a relative path is taken from the current directory)", required: true})}
  static override description = `AGENT serves the file at PATH as NAME to the identities its file app allows (\`ztctl file config\`). AGENT reads and hashes it (SHA-256) itself; a file that changes later is hashed again and served as it is then.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> /srv/releases/app-1.4.tar.gz --as app.tar.gz --agent agent-a',
    '<%= config.bin %> <%= command.id %> ./notes.txt --agent agent-a',
  ]

  static override flags = {
    ...controllerFlags,
    ...waitFlags,
    ...dryRunFlags,
    agent: Flags.string({description: 'identity name of the agent that serves the file', required: true}),
    as: Flags.string({description: 'the name it is fetched by (default: the file name)'}),
  }

  static override summary = 'Publish a file of an agent\'s host to the mesh'

  async run() {
    const [{publishFile}, {describeOutcome}] = await Promise.all([import('../../lib/mesh/apps.js'), import('../../lib/mesh/rollout.js')])
    const result = await this.withController((api) => publishFile(api, {agent: this.flags.agent, name: this.flags.as, path: this.args.path}, this.changeOptions))
    return this.render(result, () => (result.dryRun ? dryRunText(result.dryRun) : `${result.file.name} published on ${result.file.agent} from ${result.file.path} (${describeOutcome(result)})`))
  }
}

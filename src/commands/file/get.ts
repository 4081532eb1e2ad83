import {Args, Flags} from '@oclif/core'

import {identityFlag} from '../../lib/cli/app-command.js'
import {BaseCommand} from '../../lib/cli/base-command.js'

export default class FileGet extends BaseCommand<typeof FileGet> {
  static override args = {name: Args.string({description: 'the published name (see `ztctl file list`)', required: true})}
  static override description = `Fetch a published file over the mesh, verified by its SHA-256 and written atomically (a partial file next to the destination, renamed into place once complete and verified).

A broken transfer resumes where it stopped — within this command (up to 5 attempts) and in a later run of the same command: the agent sends only the rest. A progress bar shows on a terminal.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> app.tar.gz',
    '<%= config.bin %> <%= command.id %> app.tar.gz --output /tmp/ --from agent-a',
  ]

  static override flags = {
    ...identityFlag,
    from: Flags.string({description: 'fetch from this agent (default: the first connected one that publishes NAME)'}),
    // As in `enroll`, -o names the file written here; --json gives the machine-readable result.
    output: Flags.string({char: 'o', description: 'destination file or directory (default: NAME in the current directory)'}),
  }

  static override summary = 'Fetch a published file'

  protected override get format(): 'json' | 'table' {
    return this.jsonEnabled() ? 'json' : 'table'
  }

  async run() {
    const {getFile} = await import('../../lib/apps/client/files.js')
    const {formatBytes, progressBar} = await import('../../lib/cli/progress-bar.js')
    const bar = process.stderr.isTTY && !this.jsonEnabled() ? progressBar(process.stderr, this.args.name) : undefined
    try {
      const result = await getFile({
        context: this.flags.context, from: this.flags.from, home: this.home, identityFile: this.flags.identity, name: this.args.name,
        onProgress: bar?.update, output: this.flags.output,
      })
      bar?.done()
      const resumed = result.resumedFrom > 0 ? `, resumed at ${formatBytes(result.resumedFrom)}` : ''
      return this.render(result, () => `${result.path}: ${formatBytes(result.size)} from ${result.agent}, SHA-256 ${result.sha256} verified (${formatBytes(result.bytesTransferred)} transferred${resumed})`)
    } finally {
      bar?.done()
    }
  }
}

import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {parseDuration} from '../../lib/cli/render.js'
import {ExitCode, ZtError} from '../../lib/errors.js'

export default class IdentityCreate extends BaseCommand<typeof IdentityCreate> {
  static override args = {name: Args.string({description: 'identity name (lower-case letters, digits, ".", "_", "-")', required: true})}
  static override description = `Create an identity and its one-time enrollment token (a JWT signed by the controller).

The token is written to NAME.jwt in the current folder (mode 0600), or to -o FILE (as \`ziti edge create identity -o\`); with -o - it is printed to stdout instead and no file is written. Here -o names the token file, not the output format: use --json for machine-readable output. Hand the token to the holder, who runs \`ztctl enroll NAME.jwt\` before it expires.`

  static override examples = [
    '<%= config.bin %> identity create web -a frontend',
    '<%= config.bin %> identity create db -a backend -a storage -o /tmp/db.jwt --expires 30m',
    '<%= config.bin %> identity create ci -o - --expires 10m',
    '<%= config.bin %> identity create ci --json',
  ]

  static override flags = {
    admin: Flags.boolean({description: 'may use the management API (like the admin identity)'}),
    expires: Flags.string({default: '3h', description: 'how long the token stays valid (e.g. 3h, 30m)'}),
    // Overrides the global -o/--output: for this command (as in ziti) -o is the token file.
    output: Flags.string({char: 'o', description: 'where to write the token (default ./NAME.jwt; "-" prints it instead)'}),
    role: Flags.string({char: 'a', description: 'role attribute, referenced as #ROLE in policies (repeatable)', multiple: true}),
  }

  protected override get format(): 'json' | 'table' {
    return this.jsonEnabled() ? 'json' : 'table'
  }

  async run(): Promise<unknown> {
    const expiresInSeconds = parseDuration(this.flags.expires)
    if (expiresInSeconds === undefined || expiresInSeconds < 1) {
      throw new ZtError('ZT_ERR_BAD_FLAG', `--expires "${this.flags.expires}" is not a duration`, {exit: ExitCode.usage, suggestion: 'e.g. --expires 3h'})
    }

    const {createIdentity} = await import('../../lib/client/identities.js')
    const created = await createIdentity({
      admin: this.flags.admin, context: this.flags.context, expiresInSeconds, home: this.home, name: this.args.name,
      out: this.flags.output, roles: this.flags.role,
    })
    return this.render(created, () => [
      `New identity ${created.name} created with id: ${created.id}`,
      `Enrollment expires at ${created.expiresAt}`,
      created.jwtPath ? `Token written to ${created.jwtPath}` : created.jwt,
    ].join('\n'))
  }
}

import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags} from '../../lib/cli/flag-groups.js'
import {parseDuration} from '../../lib/cli/render.js'
import {ExitCode, ZtError} from '../../lib/errors.js'

export default class IdentityCreate extends BaseCommand<typeof IdentityCreate> {
  static override args = {name: Args.string({description: 'identity name (lower-case letters, digits, ".", "_", "-")', required: true})}
  static override description = `Create an identity and its one-time enrollment token (a JWT signed by the controller).

The token is written to NAME.jwt in the current folder (mode 0600), or to --out FILE; with --out - the token alone goes to standard output (the other lines to standard error), so it can be piped into \`ztctl enroll -\`. Hand the token to the holder, who runs \`ztctl enroll NAME.jwt\` before it expires.`

  static override examples = [
    '<%= config.bin %> identity create web -a frontend',
    '<%= config.bin %> identity create db -a backend -a storage --out /tmp/db.jwt --expires 30m',
    '<%= config.bin %> identity create ci --out - --expires 10m',
    '<%= config.bin %> identity create alice --admin -o json',
    "<%= config.bin %> identity create node-1 -a node --serves 'prod/*' --serves shop/web --pod-cidr 10.1.0.0/24",
  ]

  static override flags = {
    ...controllerFlags,
    admin: Flags.boolean({description: 'may use the management API (like the admin identity)'}),
    expires: Flags.string({default: '3h', description: 'how long the token stays valid (e.g. 3h, 30m)'}),
    out: Flags.string({description: 'where to write the token (default ./NAME.jwt; "-" prints it on standard output)'}),
    'pod-cidr': Flags.string({description: 'node identities: the CIDR its pods\' IPs lie in; it may publish no other address (repeatable)', multiple: true}),
    role: Flags.string({char: 'a', description: 'role attribute, referenced as #ROLE in policies (repeatable)', multiple: true}),
    serves: Flags.string({description: 'node identities: NAMESPACE/SERVICE_ACCOUNT it may get certificates for and publish, * for either part (repeatable)', multiple: true}),
  }

  async run(): Promise<unknown> {
    const expiresInSeconds = parseDuration(this.flags.expires)
    if (expiresInSeconds === undefined || expiresInSeconds < 1) {
      throw new ZtError('ZT_ERR_BAD_FLAG', `--expires "${this.flags.expires}" is not a duration`, {exit: ExitCode.usage, suggestion: 'e.g. --expires 3h'})
    }

    const {createIdentity} = await import('../../lib/client/identities.js')
    const created = await createIdentity({
      admin: this.flags.admin, context: this.flags.context, expiresInSeconds, home: this.home, name: this.args.name,
      out: this.flags.out, roles: this.flags.role, scope: {podCidrs: this.flags['pod-cidr'], serves: this.flags.serves},
    })
    const lines = [
      `New identity ${created.name} created with id: ${created.id}`,
      `Enrollment expires at ${created.expiresAt}`,
      ...(created.jwtPath ? [`Token written to ${created.jwtPath}`] : []),
    ].join('\n')
    if (created.jwtPath || this.format !== 'table') return this.render(created, () => lines)
    // --out -: standard output carries the token alone.
    process.stderr.write(lines + '\n')
    this.log(created.jwt)
    return created
  }
}

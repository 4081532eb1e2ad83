import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../lib/cli/base-command.js'

export default class Enroll extends BaseCommand<typeof Enroll> {
  static override args = {jwt: Args.string({description: 'the enrollment token file (NAME.jwt)', required: true})}
  static override description = `Enroll with a one-time token: generate a key here, get a certificate from the controller, write an identity file (0600) and delete the token.

The token pins the controller's CA, so no prior trust is needed; an expired token fails before anything is sent.`

  static override examples = ['<%= config.bin %> enroll web.jwt', '<%= config.bin %> enroll web.jwt --out /etc/ztctl/web.json']

  static override flags = {
    force: Flags.boolean({description: 'overwrite an existing identity file'}),
    // Overrides the global -o/--output: as in `ziti edge enroll`, -o is the identity file. Use --json for JSON.
    output: Flags.string({char: 'o', description: 'identity file to write (default: NAME.json next to the token)'}),
  }

  protected override get format(): 'json' | 'table' {
    return this.jsonEnabled() ? 'json' : 'table'
  }

  async run(): Promise<unknown> {
    const {enroll} = await import('../lib/client/enroll.js')
    const result = await enroll({force: this.flags.force, jwtPath: this.args.jwt, out: this.flags.output})
    return this.render(result, () => [
      `Enrolled ${result.name} (${result.spiffe})`,
      `Identity file written to ${result.identityPath}`,
      `Certificate valid until ${result.notAfter}; it is renewed at half-life`,
    ].join('\n'))
  }
}

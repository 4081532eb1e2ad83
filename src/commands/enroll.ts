import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../lib/cli/base-command.js'

export default class Enroll extends BaseCommand<typeof Enroll> {
  static override args = {jwt: Args.string({description: 'the enrollment token file (NAME.jwt); - reads it from standard input', required: true})}
  static override description = `Enroll with a one-time token: generate a key here, get a certificate from the controller, write an identity file (0600) and delete the token.

The token pins the controller's CA, so no prior trust is needed; an expired token fails before anything is sent. With --context NAME the identity also becomes a CLI context (like a kubeconfig entry): the way a second admin, or an admin on another machine, starts using a controller.`

  static override examples = [
    '<%= config.bin %> enroll web.jwt',
    '<%= config.bin %> enroll web.jwt --out /etc/ztctl/web.json',
    '<%= config.bin %> enroll alice.jwt --context prod',
    'ssh ctrl ztctl identity create alice --admin --out - | <%= config.bin %> enroll - --out alice.json --context prod',
  ]

  static override flags = {
    context: Flags.string({description: 'also write a CLI context of this name using the new identity (current when there is none)'}),
    force: Flags.boolean({description: 'overwrite an existing identity file'}),
    out: Flags.string({description: 'identity file to write (default: NAME.json next to the token; ./NAME.json for -)'}),
  }

  async run(): Promise<unknown> {
    const [{enroll}, token] = await Promise.all([
      import('../lib/client/enroll.js'),
      this.args.jwt === '-' ? import('../lib/cli/stdin.js').then(({readStdin}) => readStdin('the enrollment token')) : undefined,
    ])
    const {context, force, out} = this.flags
    const result = await enroll({context: context ? {home: this.home, name: context} : undefined, force, jwtPath: this.args.jwt, out, token})
    return this.render(result, () => [
      `Enrolled ${result.name} (${result.spiffe})`,
      `Identity file written to ${result.identityPath}`,
      `Certificate valid until ${result.notAfter}; it is renewed at half-life`,
      ...(result.context ? [`Context "${result.context}" written (\`ztctl context use ${result.context}\` to make it current)`] : []),
    ].join('\n'))
  }
}

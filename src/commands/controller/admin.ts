import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {parseDuration} from '../../lib/cli/render.js'
import {ExitCode, ZtError} from '../../lib/errors.js'

export default class ControllerAdmin extends BaseCommand<typeof ControllerAdmin> {
  static override description = `Run on the controller's host, with access to its data dir: signs a new certificate for the admin identity with the controller's CA (or creates the admin when it is gone), writes the identity file and makes its context current. The way back when an admin certificate expired (nobody can call the API then), also while the controller runs.`

  static override examples = [
    '<%= config.bin %> controller admin',
    '<%= config.bin %> controller admin --data-dir /var/lib/ztctl/controller --context-name prod',
  ]

  static override flags = {
    'admin-cert-ttl': Flags.string({default: '720h', description: 'lifetime of the new certificate (renewed on use past half-life)'}),
    'context-name': Flags.string({default: 'local', description: 'the CLI context to write and make current'}),
    'data-dir': Flags.string({description: 'the controller\'s data dir (default: <home>/controller)'}),
    name: Flags.string({default: 'admin', description: 'name of the admin identity'}),
    url: Flags.string({description: 'the controller\'s URL (default: the one it recorded at its last start)'}),
  }

  static override summary = 'Re-issue the admin identity on the controller\'s host (recovery)'

  async run(): Promise<unknown> {
    const ttl = parseDuration(this.flags['admin-cert-ttl'])
    if (ttl === undefined || ttl < 2) {
      throw new ZtError('ZT_ERR_BAD_FLAG', `--admin-cert-ttl "${this.flags['admin-cert-ttl']}" is not a duration of at least 2s`, {exit: ExitCode.usage, suggestion: 'e.g. --admin-cert-ttl 720h'})
    }

    const [{recoverAdmin}, {defaultControllerDataDir}] = await Promise.all([import('../../lib/controller/admin.js'), import('../../lib/home/home.js')])
    const recovered = await recoverAdmin({
      adminCertTtlSeconds: ttl, contextName: this.flags['context-name'], dataDir: this.flags['data-dir'] ?? defaultControllerDataDir(this.home),
      home: this.home, name: this.flags.name, url: this.flags.url,
    })
    return this.render(recovered, () => [
      `Admin identity ${recovered.name} re-issued: ${recovered.identityFile} (valid until ${recovered.notAfter})`,
      `Context "${recovered.context}" (${recovered.controller}) is current`,
    ].join('\n'))
  }
}

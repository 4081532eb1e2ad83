import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {logFlags} from '../../lib/cli/flag-groups.js'
import {parseDuration} from '../../lib/cli/render.js'
import {untilStopped} from '../../lib/cli/signals.js'
import {ExitCode, ZtError} from '../../lib/errors.js'

export default class ControllerRun extends BaseCommand<typeof ControllerRun> {
  static override description = `Run the controller in the foreground: CA, enrollment, certificate signing, management API and config stream on one TLS port.

The first start creates the CA (or imports --ca-cert/--ca-key as an intermediate), writes an admin identity to <home>/identities/admin.json and a context (default "local"), so the next ztctl command just works. SIGINT/SIGTERM stop it gracefully (exit 130 after Ctrl-C, 0 after SIGTERM).`

  // A long-running command: the banner is printed at start (`-o json` for machines), not on return.
  static override enableJsonFlag = false

  static override examples = [
    '<%= config.bin %> controller run',
    '<%= config.bin %> controller run --listen 0.0.0.0:15012 --advertise https://ctrl.example:15012',
    '<%= config.bin %> controller run --listen 127.0.0.1:0 --data-dir /tmp/ctrl --cert-ttl 30s',
    '<%= config.bin %> controller run --listen 0.0.0.0:15012 --hub --hub-listen 0.0.0.0:15009',
  ]

  static override flags = {
    ...logFlags,
    'admin-cert-ttl': Flags.string({default: '720h', description: 'lifetime of admin certificates; the CLI renews them on use past half-life'}),
    advertise: Flags.string({description: 'URL agents and CLIs use to reach this controller (default: the bound address)'}),
    'ca-cert': Flags.string({dependsOn: ['ca-key'], description: 'import this intermediate CA certificate (PEM, optionally followed by its chain)'}),
    'ca-key': Flags.string({dependsOn: ['ca-cert'], description: 'the unencrypted PKCS#8 EC P-256 key of --ca-cert'}),
    'cert-ttl': Flags.string({default: '24h', description: 'lifetime of issued certificates of agents and workloads (e.g. 24h, 30s)'}),
    'context-name': Flags.string({default: 'local', description: 'name of the CLI context to write'}),
    'data-dir': Flags.string({description: 'where the store and CA live (default: <home>/controller)'}),
    hub: Flags.boolean({description: 'also run a hub in this process (agents attach with `agent run --hub HOST:PORT`); its identity (role hub) is issued and renewed here'}),
    'hub-listen': Flags.string({default: '0.0.0.0:15009', description: 'with --hub: where agents attach'}),
    'hub-name': Flags.string({default: 'hub', description: 'with --hub: the identity name of the embedded hub'}),
    listen: Flags.string({default: '127.0.0.1:15012', description: 'HOST:PORT to listen on (port 0 = any free port)'}),
    'trust-domain': Flags.string({description: 'SPIFFE trust domain, fixed at first start (default cluster.local)'}),
  }

  async run(): Promise<void> {
    const ttl = parseDuration(this.flags['cert-ttl'])
    if (ttl === undefined || ttl < 2) {
      throw new ZtError('ZT_ERR_BAD_FLAG', `--cert-ttl "${this.flags['cert-ttl']}" is not a duration of at least 2s`, {
        exit: ExitCode.usage,
        suggestion: 'e.g. --cert-ttl 24h or --cert-ttl 30s',
      })
    }

    const adminTtl = parseDuration(this.flags['admin-cert-ttl'])
    if (adminTtl === undefined || adminTtl < 2) {
      throw new ZtError('ZT_ERR_BAD_FLAG', `--admin-cert-ttl "${this.flags['admin-cert-ttl']}" is not a duration of at least 2s`, {exit: ExitCode.usage, suggestion: 'e.g. --admin-cert-ttl 720h'})
    }

    const {createLogger} = await import('../../lib/log/logger.js')
    // Logs go to stderr: stdout carries the banner (or its JSON form).
    const logger = await createLogger({destination: 2, level: this.flags['log-level']})
    const {startController} = await import('../../lib/controller/controller.js')
    const controller = await startController({
      adminCertTtlSeconds: adminTtl,
      advertise: this.flags.advertise,
      caImport: this.flags['ca-cert'] ? {certFile: this.flags['ca-cert'], keyFile: this.flags['ca-key']!} : undefined,
      certTtlSeconds: ttl,
      contextName: this.flags['context-name'],
      dataDir: this.flags['data-dir'],
      home: this.home,
      hub: this.flags.hub ? {listen: this.flags['hub-listen'], logLevel: this.flags['log-level'], name: this.flags['hub-name']} : undefined,
      listen: this.flags.listen,
      logger,
      trustDomain: this.flags['trust-domain'],
      version: this.config.version,
    })

    const banner = {
      adminIdentity: controller.adminIdentityPath, caFingerprint: controller.caFingerprint, context: controller.contextName,
      dataDir: controller.dataDir, hub: controller.hub, pid: process.pid, trustDomain: controller.trustDomain, url: controller.url,
    }
    await this.render(banner, () => [
      `controller listening at: ${controller.url}`,
      `  data dir             : ${controller.dataDir}`,
      `  trust domain         : ${controller.trustDomain}`,
      `  CA fingerprint       : ${controller.caFingerprint}${controller.caCreated ? ' (new)' : ''}`,
      `  admin identity       : ${controller.adminIdentityPath}${controller.adminCreated ? ' (new)' : ''}`,
      `  context              : ${controller.contextName}`,
      ...(controller.hub ? [`  hub                  : ${controller.hub} (agents: --hub ${controller.hub})`] : []),
      `  pid                  : ${process.pid}`,
    ].join('\n'))

    const signal = await untilStopped()
    await controller.close()
    logger.info({signal}, 'controller stopped')
    logger.flush()
  }
}

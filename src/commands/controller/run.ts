import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {kubernetesFlags, logFlags} from '../../lib/cli/flag-groups.js'
import {untilStopped} from '../../lib/cli/signals.js'
import type {RunningController} from '../../lib/controller/controller.js'

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
    '<%= config.bin %> controller run --store kubernetes --listen 0.0.0.0:15012 --health 0.0.0.0:15014 --advertise https://ztctl-controller.ztctl-system.svc:15012',
  ]

  static override flags = {
    ...logFlags,
    ...kubernetesFlags,
    'admin-cert-ttl': Flags.string({default: '720h', description: 'lifetime of admin certificates; the CLI renews them on use past half-life'}),
    advertise: Flags.string({description: 'URL agents and CLIs use to reach this controller (default: the bound address)'}),
    'ca-cert': Flags.string({dependsOn: ['ca-key'], description: 'import this intermediate CA certificate (PEM, optionally followed by its chain)'}),
    'ca-key': Flags.string({dependsOn: ['ca-cert'], description: 'the unencrypted PKCS#8 EC P-256 key of --ca-cert'}),
    'cert-ttl': Flags.string({default: '24h', description: 'lifetime of issued certificates of agents and workloads (e.g. 24h, 30s)'}),
    'context-name': Flags.string({default: 'local', description: 'name of the CLI context to write'}),
    'data-dir': Flags.string({description: 'where the store and CA live (default: <home>/controller)'}),
    'host-identity-secret': Flags.string({description: 'with --store kubernetes: keep the host pod\'s identity `host` (role host) valid in this Secret (key identity.json), as the leader keeps ztctl-admin (install passes ztctl-host with hostPod.enabled)'}),
    'hub-identity-secret': Flags.string({description: 'with --store kubernetes: keep the installed hub\'s identity `hub` (role hub) valid in this Secret (key identity.json), as the leader keeps ztctl-admin (install passes ztctl-hub with hub.enabled)'}),
    hub: Flags.boolean({description: 'also run a hub in this process (agents attach with `agent run --hub HOST:PORT`); its identity (role hub) is issued and renewed here'}),
    'hub-listen': Flags.string({default: '0.0.0.0:15009', description: 'with --hub: where agents attach'}),
    'hub-name': Flags.string({default: 'hub', description: 'with --hub: the identity name of the embedded hub'}),
    health: Flags.string({description: 'HOST:PORT of a plain-HTTP listener for probes: GET /ready, GET /healthz'}),
    'housekeeping-interval': Flags.string({default: '60s', description: 'how often the leader sweeps expired revocations and checks the admin identity', hidden: true}),
    'leader-election': Flags.string({
      default: '15s,10s,2s',
      description: 'with --store kubernetes: Lease duration, renew deadline and retry period (a successor takes over at most a duration after the leader died)',
      hidden: true,
    }),
    listen: Flags.string({default: '127.0.0.1:15012', description: 'HOST:PORT to listen on (port 0 = any free port)'}),
    store: Flags.string({
      default: 'sqlite',
      description: 'where the state lives: sqlite = a file in --data-dir; kubernetes = custom resources and Secrets in the namespace (-n, else $POD_NAMESPACE, else ztctl-system), every replica serving, a Lease electing the leader',
      options: ['sqlite', 'kubernetes'],
    }),
    'trust-domain': Flags.string({description: 'SPIFFE trust domain, fixed at first start (default cluster.local)'}),
  }

  async run(): Promise<void> {
    const {controllerRunOptions} = await import('../../lib/controller/run-options.js')
    const options = controllerRunOptions(this.flags)
    const {createLogger} = await import('../../lib/log/logger.js')
    // Logs go to stderr: stdout carries the banner (or its JSON form).
    const logger = await createLogger({destination: 2, level: this.flags['log-level']})
    const {startController} = await import('../../lib/controller/controller.js')
    const controller = await startController({...options, home: this.home, logger, version: this.config.version})
    await this.render(banner(controller), () => bannerText(controller))
    const signal = await untilStopped()
    await controller.close()
    logger.info({signal}, 'controller stopped')
    logger.flush()
  }
}

/** What the banner says, for machines (-o json). */
function banner(controller: RunningController) {
  return {
    adminIdentity: controller.adminIdentityPath, caFingerprint: controller.caFingerprint, context: controller.contextName, ...controller.describe,
    health: healthUrl(controller), hub: controller.hub, pid: process.pid, store: controller.store,
    trustDomain: controller.trustDomain, url: controller.url,
  }
}

const healthUrl = (controller: RunningController): string | undefined => controller.health && `http://${controller.health.host}:${controller.health.port}`

function bannerText(controller: RunningController): string {
  const line = (label: string, value: string | undefined): string[] => (value === undefined ? [] : [`  ${label.padEnd(21)}: ${value}`])
  return [
    `controller listening at: ${controller.url}`,
    ...line('store', controller.store),
    ...Object.entries(controller.describe).map(([label, value]) => line(label, value)).flat(),
    ...line('trust domain', controller.trustDomain),
    ...line('CA fingerprint', `${controller.caFingerprint}${controller.caCreated ? ' (new)' : ''}`),
    ...line('admin identity', `${controller.adminIdentityPath}${controller.adminCreated ? ' (new)' : ''}`),
    ...line('context', controller.contextName),
    ...line('health', healthUrl(controller)),
    ...line('hub', controller.hub && `${controller.hub} (agents: --hub ${controller.hub})`),
    ...line('pid', String(process.pid)),
  ].join('\n')
}

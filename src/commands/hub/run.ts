import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {logFlags} from '../../lib/cli/flag-groups.js'

export default class HubRun extends BaseCommand<typeof HubRun> {
  static override description = `Runs a hub: agents attach to it with one outbound mutual-TLS HTTP/2 connection each (\`agent run --hub HOST:PORT\`), so an agent that accepts no connection (\`--no-listen\`, behind NAT or a firewall) is still reachable. A source reaches a destination through the hub with an inner HBONE session between the two agents' own certificates: the hub relays ciphertext, sees identities and byte counts, and refuses relays the mesh's policies allow to no service of the destination. The identity needs the role "hub" (\`ztctl identity create hub-1 -a hub\`). Configuration comes from the controller's stream (or a static --config file); JSON log lines go to stdout; SIGTERM drains relays up to --drain-timeout. Every flag has an environment variable, for containers.`
  static override enableJsonFlag = false
  static override examples = [
    '<%= config.bin %> <%= command.id %> -i hub-1.json',
    '<%= config.bin %> <%= command.id %> -i hub-1.json --listen 0.0.0.0:15009 --admin 127.0.0.1:15010',
    'ZTCTL_HUB_IDENTITY=/etc/ztctl/hub.json ZTCTL_HUB_LISTEN=0.0.0.0:15009 <%= config.bin %> <%= command.id %>',
  ]
  static override flags = {
    ...logFlags,
    admin: Flags.string({default: '127.0.0.1:15010', description: 'admin listener: /hub_status, /metrics, /healthz/ready, /logging, /quitquitquit (HOST:PORT or unix:PATH)', env: 'ZTCTL_HUB_ADMIN'}),
    advertise: Flags.string({description: 'HOST:PORT agents dial, for logs [default: the bound --listen address]', env: 'ZTCTL_HUB_ADVERTISE'}),
    config: Flags.string({description: 'static configuration file (a ConfigSnapshot as JSON) instead of the controller; re-read on change', env: 'ZTCTL_HUB_CONFIG'}),
    controller: Flags.string({description: 'the controller\'s URL, https://HOST:PORT, instead of the identity file\'s (in a cluster: its Service by address)', env: 'ZTCTL_HUB_CONTROLLER_URL'}),
    'drain-timeout': Flags.string({default: '5s', description: 'on SIGTERM, how long open relays may finish', env: 'ZTCTL_HUB_DRAIN_TIMEOUT'}),
    identity: Flags.string({char: 'i', description: 'identity file of an identity with role "hub" (written by `ztctl enroll`)', env: 'ZTCTL_HUB_IDENTITY', required: true}),
    listen: Flags.string({default: '0.0.0.0:15009', description: 'where agents attach (mutual TLS, HTTP/2)', env: 'ZTCTL_HUB_LISTEN'}),
    'ready-file': Flags.string({description: 'once ready, write the bound addresses here as JSON (port 0 works everywhere)', env: 'ZTCTL_HUB_READY_FILE'}),
  }
  static override summary = 'Run a hub that relays between agents (end-to-end mutual TLS)'

  async run(): Promise<void> {
    const {parseDrainTimeout} = await import('../../lib/proxy/daemon/run-options.js')
    const drainTimeoutMs = parseDrainTimeout(this.flags['drain-timeout'])
    const {launchHub} = await import('../../lib/proxy/daemon/hub.js')
    const hub = await launchHub({
      admin: this.flags.admin, advertise: this.flags.advertise, buildVersion: this.config.version, config: this.flags.config, controllerUrl: this.flags.controller, drainTimeoutMs,
      identityFile: this.flags.identity, listen: this.flags.listen, logLevel: this.flags['log-level'], readyFile: this.flags['ready-file'],
    })
    const stop = (signal: string) => () => void hub.shutdown(`received ${signal}`)
    process.once('SIGTERM', stop('SIGTERM'))
    process.once('SIGINT', stop('SIGINT'))
    await hub.closed
  }
}

import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {logFlags} from '../../lib/cli/flag-groups.js'
import {MAX_HUBS} from '../../lib/config/types.js'
import {ExitCode} from '../../lib/errors.js'
import {NODE_CA_PATH, NODE_TOKEN_PATH} from '../../lib/kube/objects.js'

export default class AgentRun extends BaseCommand<typeof AgentRun> {
  static override description = `Runs the HBONE proxy for one identity: hosts the outbound tunnels assigned to it, opens its inbound tunnel listeners, and enforces policies. Configuration comes from the controller's stream (or a static --config file); JSON log lines go to stdout. SIGTERM drains open connections up to --drain-timeout, then exits.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> -i agent-a.json',
    '<%= config.bin %> <%= command.id %> -i agent-a.json --hbone 0.0.0.0:15008 --advertise 10.0.0.7:15008',
    '<%= config.bin %> <%= command.id %> -i a.json --config mesh.json --hbone 127.0.0.1:0 --admin 127.0.0.1:0 --metrics 127.0.0.1:0 --readiness 127.0.0.1:0 --ready-file a.ready.json',
    '<%= config.bin %> <%= command.id %> -i agent-b.json --no-listen --hub hub-1.example:15009 --hub hub-2.example:15009',
    '<%= config.bin %> <%= command.id %> --kubernetes --controller https://$ZTCTL_CONTROLLER_SERVICE_HOST:$ZTCTL_CONTROLLER_SERVICE_PORT',
  ]
  static override flags = {
    ...logFlags,
    admin: Flags.string({default: '127.0.0.1:15000', description: 'admin listener: /config_dump, /logging, /quitquitquit'}),
    advertise: Flags.string({description: 'HOST:PORT other agents dial [default: the HBONE address, 0.0.0.0 → 127.0.0.1; with --kubernetes $POD_IP and the HBONE port]'}),
    config: Flags.string({description: 'static configuration file (a ConfigSnapshot as JSON) instead of the controller; re-read on change'}),
    controller: Flags.string({description: 'the controller\'s URL, https://IP:PORT: with --kubernetes that of its Service (required); with -i instead of the identity file\'s', env: 'ZTCTL_CONTROLLER_URL'}),
    'data-path': Flags.string({
      default: 'auto',
      description: 'who moves the bytes: native = TLS + HTTP/2 in C (the bundled addon), node = node:http2; auto = native when the addon loads',
      options: ['auto', 'native', 'node'],
    }),
    'drain-timeout': Flags.string({default: '5s', description: 'on SIGTERM, how long open connections may finish'}),
    hbone: Flags.string({default: '0.0.0.0:15008', description: 'HBONE (mTLS HTTP/2 CONNECT) listener'}),
    hub: Flags.string({
      description: `[NAME@]HOST:PORT of a hub to attach to (repeatable, up to ${MAX_HUBS}): one outbound connection each; sources reach this agent through it, and it reaches agents that accept no connection (native data path)`,
      multiple: true,
    }),
    'no-listen': Flags.boolean({
      description: 'open no TCP listener at all: no HBONE port (reached through --hub only, nothing to advertise), no metrics or readiness port; the admin side door becomes a Unix socket ($ZTCTL_HOME/agents/NAME.sock unless --admin unix:PATH) that also serves /metrics and /healthz/ready',
    }),
    identity: Flags.string({char: 'i', description: 'identity file written by `ztctl enroll`', exactlyOne: ['identity', 'kubernetes']}),
    'inpod-socket': Flags.string({description: 'serve the in-pod redirection protocol on this Unix socket (node agent; needs root) [e.g. /var/run/ztctl/inpod.sock]'}),
    'dns-listen': Flags.string({default: '127.0.0.1:53', description: 'with --mode tproxy: the DNS server (UDP + TCP) answering intercepted host names'}),
    'dns-resolv-conf': Flags.string({description: 'with --mode tproxy: put our DNS first in this resolv.conf (restored on exit); with `ip netns exec NAME` that is /etc/netns/NAME/resolv.conf'}),
    'dns-upstream': Flags.string({description: 'with --mode tproxy: IP[:PORT] resolving every other name [default: first nameserver of /etc/resolv.conf]'}),
    'inpod-state-dir': Flags.string({default: '/var/run/ztctl/inpod', description: 'with --inpod-socket: the workload cache `ztctl redirect add` writes; loaded as the snapshot on start'}),
    mode: Flags.string({description: 'sidecar mode for the services this identity may dial: proxy = bind each to 127.0.0.1:PORT (no privileges); tproxy = capture their intercept addresses in this network namespace and answer their names on --dns-listen (needs NET_ADMIN; rules removed on exit)', options: ['proxy', 'tproxy']}),
    'kube-ca-file': Flags.string({default: NODE_CA_PATH, description: 'with --kubernetes: the CA bundle to trust (ConfigMap ztctl-ca-root, mounted)', hidden: true}),
    'kube-token-file': Flags.string({default: NODE_TOKEN_PATH, description: 'with --kubernetes: the projected ServiceAccount token (audience ztctl)', hidden: true}),
    kubernetes: Flags.boolean({
      description: 'a node agent in a Kubernetes pod: no identity file; enroll and renew with the pod\'s ServiceAccount token as identity node-$NODE_NAME, trusting only the mounted CA bundle and the controller\'s SPIFFE ID',
      exactlyOne: ['identity', 'kubernetes'],
    }),
    metrics: Flags.string({default: '0.0.0.0:15020', description: 'Prometheus listener: /metrics, /stats/prometheus'}),
    node: Flags.string({description: 'with --kubernetes: the node this pod runs on (the downward API\'s spec.nodeName)', env: 'NODE_NAME'}),
    'proxy-port': Flags.string({description: 'with --mode proxy: tcp/NAME=PORT (repeatable); other services get a stable port from 20000–29999', multiple: true}),
    readiness: Flags.string({default: '0.0.0.0:15021', description: 'readiness listener: /healthz/ready'}),
    'ready-file': Flags.string({description: 'once ready, write the bound addresses here as JSON (port 0 works everywhere)'}),
    'stop-with-stdin': Flags.boolean({
      description: 'drain and exit when standard input closes (a supervisor such as `ztctl quickstart` holds it open; if the supervisor dies, so does the agent)',
      hidden: true,
    }),
  }
  static override summary = 'Run the data-plane agent'

  async run(): Promise<void> {
    const {agentRunOptions} = await import('../../lib/proxy/daemon/run-options.js')
    const options = await agentRunOptions(this.flags, {buildVersion: this.config.version, dataDir: () => this.home.dataDir, env: process.env, json: this.jsonEnabled()})
    const {execDaemon, runDaemon} = await import('../../lib/proxy/daemon/launch.js')
    // The lean daemon replaces this process (same PID and stdio) and never returns here; without
    // process.execve, or with ZTCTL_AGENT_IN_PROCESS=1, the agent runs inside this process.
    execDaemon(options)
    if ((await runDaemon(options)) === 'SIGINT') process.exitCode = ExitCode.interrupted
  }
}

import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {logFlags} from '../../lib/cli/flag-groups.js'
import {untilStopped} from '../../lib/cli/signals.js'
import {ExitCode, ZtError} from '../../lib/errors.js'

export default class CniRun extends BaseCommand<typeof CniRun> {
  static override description = `Run the CNI agent of a node (the ztctl-cni DaemonSet runs it in the host network, privileged).

It installs the ztctl CNI plugin into the node's plugin directory and chains it into the node's primary .conflist; at each pod's CNI ADD it decides whether the pod is enrolled (namespace label ztctl.io/dataplane-mode=ambient, opt-out annotation ztctl.io/redirection: disabled) and sets up its in-pod redirection before the pod's containers start, telling the node agent on RUN-DIR/inpod.sock. Pods that started earlier or changed enrollment later are reconciled. /healthz/ready answers 200 while the plugin is chained. When its DaemonSet is deleted (uninstall), it takes every pod of the node back to plain networking, restores the configuration byte for byte and removes the plugin.`
  static override enableJsonFlag = false
  static override examples = ['<%= config.bin %> cni run --conf-dir /etc/cni/net.d --bin-dir /opt/cni/bin --node "$NODE_NAME" --readiness 10.0.0.5:15029']
  static override flags = {
    ...logFlags,
    backend: Flags.string({description: 'firewall back end for pods\' rules [default: what the node uses]', options: ['iptables', 'iptables-legacy', 'iptables-nft', 'nft']}),
    'bin-dir': Flags.string({default: '/opt/cni/bin', description: "the node's CNI plugin directory"}),
    'conf-dir': Flags.string({default: '/etc/cni/net.d', description: "the node's CNI configuration directory"}),
    daemonset: Flags.string({default: 'ztctl-cni', description: 'this agent\'s DaemonSet (in $POD_NAMESPACE): once it is gone, a stop is an uninstall'}),
    'exclude-namespace': Flags.string({description: 'a namespace never enrolled (repeatable) [default: kube-system, ztctl-system]', multiple: true}),
    'netns-dir': Flags.string({default: '/var/run/netns', description: "where the container runtime keeps pods' network namespaces"}),
    node: Flags.string({description: 'the node this agent runs on (the downward API\'s spec.nodeName)', env: 'NODE_NAME', required: true}),
    readiness: Flags.string({default: '127.0.0.1:15029', description: 'readiness listener HOST:PORT: /healthz/ready'}),
    'reconcile-interval': Flags.string({default: '5s', description: 'how often the node\'s pods are reconciled'}),
    'run-dir': Flags.string({default: '/var/run/ztctl/node', description: 'host directory shared with the plugin and the node agent (cni.sock, inpod.sock, inpod/)'}),
  }
  static override summary = 'Run the CNI agent of a node'

  async run(): Promise<void> {
    const {parseHostPort} = await import('../../lib/proxy/address.js')
    const readiness = parseHostPort(this.flags.readiness)
    if (!readiness) {
      throw new ZtError('ZT_ERR_BAD_FLAG', `--readiness "${this.flags.readiness}" is not HOST:PORT`, {exit: ExitCode.usage, suggestion: 'e.g. --readiness 127.0.0.1:15029'})
    }

    const {parseDuration} = await import('../../lib/cli/render.js')
    const reconcileSeconds = parseDuration(this.flags['reconcile-interval'])
    if (reconcileSeconds === undefined || reconcileSeconds < 0.1) {
      throw new ZtError('ZT_ERR_USAGE', `--reconcile-interval ${JSON.stringify(this.flags['reconcile-interval'])} is not a duration of at least 100ms`, {exit: ExitCode.usage, suggestion: 'e.g. --reconcile-interval 5s'})
    }

    const {createLogger} = await import('../../lib/log/logger.js')
    const logger = await createLogger({destination: 1, level: this.flags['log-level']})
    const {startCniAgent} = await import('../../lib/cni/agent.js')
    const agent = await startCniAgent({
      backend: this.flags.backend as 'iptables' | undefined, binDir: this.flags['bin-dir'], confDir: this.flags['conf-dir'],
      daemonSet: {name: this.flags.daemonset, namespace: process.env.POD_NAMESPACE ?? 'ztctl-system'},
      enrollment: this.flags['exclude-namespace'] ? {excludedNamespaces: this.flags['exclude-namespace']} : {},
      logger, netnsDir: this.flags['netns-dir'], node: this.flags.node, readiness, reconcileMs: reconcileSeconds * 1000, runDir: this.flags['run-dir'],
    })
    await untilStopped()
    const mode = await agent.close()
    logger.info({mode}, 'CNI agent stopped')
    logger.flush()
  }
}

import {once} from 'node:events'

import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {logFlags} from '../../lib/cli/flag-groups.js'
import {ExitCode, ZtError} from '../../lib/errors.js'

export default class CniRun extends BaseCommand<typeof CniRun> {
  static override description = `Run the CNI agent of a node (the ztctl-cni DaemonSet runs it in the host network).

It checks the node's CNI directories (seen through hostPath mounts) and answers /healthz/ready with 200 while the node has a primary CNI configuration, 503 and the reason otherwise. Chaining ztctl's own plugin comes with in-pod redirection on Kubernetes.`
  static override enableJsonFlag = false
  static override examples = ['<%= config.bin %> cni run --conf-dir /host/cni/net.d --bin-dir /host/cni/bin --readiness 10.0.0.5:15029']
  static override flags = {
    ...logFlags,
    'bin-dir': Flags.string({default: '/opt/cni/bin', description: "the node's CNI plugin directory"}),
    'conf-dir': Flags.string({default: '/etc/cni/net.d', description: "the node's CNI configuration directory"}),
    readiness: Flags.string({default: '127.0.0.1:15029', description: 'readiness listener HOST:PORT: /healthz/ready'}),
  }
  static override summary = 'Run the CNI agent of a node'

  async run(): Promise<void> {
    const {parseHostPort} = await import('../../lib/proxy/address.js')
    const readiness = parseHostPort(this.flags.readiness)
    if (!readiness) {
      throw new ZtError('ZT_ERR_BAD_FLAG', `--readiness "${this.flags.readiness}" is not HOST:PORT`, {exit: ExitCode.usage, suggestion: 'e.g. --readiness 127.0.0.1:15029'})
    }

    const {createLogger} = await import('../../lib/log/logger.js')
    const logger = await createLogger({destination: 1, level: this.flags['log-level']})
    const {startCniAgent} = await import('../../lib/cni/agent.js')
    const agent = await startCniAgent({binDir: this.flags['bin-dir'], confDir: this.flags['conf-dir'], logger, readiness})
    await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')])
    await agent.close()
    logger.info({}, 'CNI agent stopped')
    logger.flush()
  }
}

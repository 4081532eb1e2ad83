import {Flags} from '@oclif/core'
import chalk from 'chalk'

import {BaseCommand} from '../lib/cli/base-command.js'
import {durationFlag, kubernetesFlags} from '../lib/cli/flag-groups.js'
import {confirmOrRefuse} from '../lib/cli/confirm.js'
import {createProgress} from '../lib/cli/progress.js'
import type {UninstallResult} from '../lib/kube/install/uninstall.js'

export default class Uninstall extends BaseCommand<typeof Uninstall> {
  static override description = `Remove what \`ztctl install\` made from the cluster, and nothing else (objects are found by their ztctl.io/install label).

Kept unless --purge: the custom resource definitions (with them the mesh's configuration), and the install namespace while it holds the controller's run-time state (CA, identities, Lease) or objects of others. --purge removes those too.`
  static override examples = ['<%= config.bin %> uninstall -y', '<%= config.bin %> uninstall --purge -y']
  static override flags = {
    ...kubernetesFlags,
    purge: Flags.boolean({description: 'also delete the custom resource definitions (and every policy, tunnel … in them) and the controller\'s CA and identities'}),
    'skip-confirmation': Flags.boolean({char: 'y', description: 'do not ask for confirmation (needed without a terminal)'}),
    timeout: durationFlag('timeout', {default: '5m', description: 'how long to wait for the deleted objects (and their pods) to go away'}),
  }
  static override summary = 'Remove ztctl from a Kubernetes cluster'

  async run(): Promise<unknown> {
    const {findInstallation} = await import('../lib/kube/install/state.js')
    const {COMPONENT_TITLES} = await import('../lib/kube/install/install.js')
    const {uninstall} = await import('../lib/kube/install/uninstall.js')
    const kube = await this.kube()
    try {
      const installation = await findInstallation(kube, this.flags.namespace)
      const namespace = installation?.namespace ?? this.flags.namespace ?? 'ztctl-system'
      const what = this.flags.purge ? ', with its custom resources, CA and identities (--purge)' : ''
      await confirmOrRefuse(`This will uninstall ztctl from the cluster of context ${kube.context} (${kube.server}), namespace ${namespace}${what}. Proceed?`, {
        flag: '-y', skip: this.flags['skip-confirmation'],
      })
      const progress = await createProgress(this.jsonEnabled() ? process.stderr : process.stdout)
      const result = await uninstall({
        context: {home: this.home}, deadline: Date.now() + this.flags.timeout, kube, namespace, purge: this.flags.purge,
        onEvent(event) {
          if (event.type === 'wait') progress.update(event.message)
          else if (event.type === 'start') progress.start(`Removing ${COMPONENT_TITLES[event.component]}`)
          else progress.succeed(`${COMPONENT_TITLES[event.component]} removed ${chalk.dim(`(${event.objects.length} object${event.objects.length === 1 ? '' : 's'})`)}`)
        },
      })
      progress.succeed(result.deleted.length === 0 ? 'Nothing to remove: no object made by ztctl install was found' : 'Uninstall complete')
      return this.render(result, () => keptText(result))
    } finally {
      kube.close()
    }
  }
}

/** What uninstall kept, by reason, and the contexts it deleted; nothing when it kept nothing. */
function keptText(result: UninstallResult): string | undefined {
  const byReason = new Map<string, string[]>()
  for (const entry of result.kept) byReason.set(entry.reason, [...(byReason.get(entry.reason) ?? []), entry.object])
  const contextLine = result.contexts.length === 0 ? [] : [`Context${result.contexts.length === 1 ? '' : 's'} ${result.contexts.join(', ')} deleted (it reached this controller)`]
  if (result.kept.length === 0 && contextLine.length === 0) return undefined
  return [
    ...contextLine,
    ...(result.kept.length === 0 ? [] : ['Kept:']),
    ...[...byReason].map(([reason, objects]) => `  ${objects.join(', ')}: ${reason}`),
    ...(result.kept.length === 0 ? [] : [chalk.dim('`ztctl uninstall --purge` removes them too.')]),
  ].join('\n')
}

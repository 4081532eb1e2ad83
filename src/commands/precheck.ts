import chalk from 'chalk'

import {BaseCommand} from '../lib/cli/base-command.js'
import {kubernetesFlags} from '../lib/cli/flag-groups.js'
import {valuesFlags, valuesFromFlags} from '../lib/cli/values-flags.js'
import type {Finding} from '../lib/kube/install/precheck.js'

const MARK: Record<Finding['level'], string> = {error: chalk.red('✘'), info: chalk.cyan('i'), ok: chalk.green('✔'), warning: chalk.yellow('!')}

export default class Precheck extends BaseCommand<typeof Precheck> {
  static override description = `Check whether ztctl can be installed (or upgraded) in the cluster, as \`istioctl x precheck\` does: the Kubernetes version, the rights to create what install renders, an installation or same-named objects already there, a namespace still terminating, Ready nodes and the image on them, and the CNI directories on each node (asked by a short-lived pod in a namespace of its own, deleted afterwards). Each finding says what to do; exit code 1 when one would make install fail.`
  static override examples = ['<%= config.bin %> precheck', '<%= config.bin %> precheck --profile demo --set image.pullPolicy=Never']
  static override flags = {...kubernetesFlags, ...valuesFlags}
  static override summary = 'Check that ztctl can be installed in a Kubernetes cluster'

  async run(): Promise<unknown> {
    const {renderInstallation} = await import('../lib/kube/manifest/render.js')
    const {precheck} = await import('../lib/kube/install/precheck.js')
    const rendering = await renderInstallation(await valuesFromFlags(this.flags, this.config.version), this.config.version)
    const kube = await this.kube()
    try {
      const findings = await precheck(kube, rendering)
      const errors = findings.filter((finding) => finding.level === 'error').length
      if (errors > 0) process.exitCode = 1
      return this.render({errors, findings}, () => [
        ...findings.flatMap((finding) => [`${MARK[finding.level]} ${finding.message}`, ...(finding.fix ? [`    fix: ${finding.fix}`] : [])]),
        errors === 0
          ? `${chalk.green('✔')} No issues found when checking the cluster. ztctl is safe to install or upgrade!`
          : `${chalk.red('✘')} ${errors} issue${errors > 1 ? 's' : ''} found: fix them before installing (each says how)`,
      ].join('\n'))
    } finally {
      kube.close()
    }
  }
}

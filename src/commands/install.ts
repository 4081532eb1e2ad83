import {Flags} from '@oclif/core'
import chalk from 'chalk'

import {BaseCommand} from '../lib/cli/base-command.js'
import {kubernetesFlags} from '../lib/cli/flag-groups.js'
import {confirmOrRefuse} from '../lib/cli/confirm.js'
import {colorDiff} from '../lib/cli/diff-text.js'
import {createProgress, type Progress} from '../lib/cli/progress.js'
import {parseDuration} from '../lib/cli/render.js'
import {valuesFlags, valuesFromFlags} from '../lib/cli/values-flags.js'
import {ExitCode, ZtError} from '../lib/errors.js'
import type {Change} from '../lib/kube/install/apply.js'
import type {InstallEvent, InstallResult} from '../lib/kube/install/install.js'
import type {Component} from '../lib/kube/manifest/objects.js'

export default class Install extends BaseCommand<typeof Install> {
  static override description = `Install ztctl into a Kubernetes cluster, as \`istioctl install\` does: custom resources, namespace, RBAC, the controller, the CNI agents and the node agents, each applied (server-side, field manager ztctl) and waited for before the next.

At the end it writes a ztctl context of kind kubernetes (k8s-<kube context>) and makes it current, so the other ztctl commands reach the installed controller (through a port-forward, as its admin). Run it again to upgrade: only what changed is applied, and what the new values no longer render is pruned. With the same values it changes nothing and says so. --dry-run shows the diff against the live cluster, checked by the API server, and changes nothing.`
  static override examples = [
    '<%= config.bin %> install --profile ambient -y',
    '<%= config.bin %> install --set controller.replicas=2 --dry-run',
    '<%= config.bin %> install -f values.yaml --kubeconfig ~/.kube/prod --kube-context prod --readiness-timeout 10m',
  ]
  static override flags = {
    ...kubernetesFlags,
    ...valuesFlags,
    'dry-run': Flags.boolean({description: 'show what would change (a diff against the live cluster, checked by a server-side dry run) and change nothing'}),
    'readiness-timeout': Flags.string({default: '5m', description: 'how long to wait for each component to be ready', env: 'ZTCTL_READINESS_TIMEOUT'}),
    'skip-confirmation': Flags.boolean({char: 'y', description: 'do not ask for confirmation (needed without a terminal)'}),
  }
  static override summary = 'Install or upgrade ztctl in a Kubernetes cluster'

  async run(): Promise<unknown> {
    const readinessTimeoutMs = readinessTimeout(this.flags['readiness-timeout'])
    const {renderInstallation} = await import('../lib/kube/manifest/render.js')
    const rendering = await renderInstallation(await valuesFromFlags(this.flags, this.config.version), this.config.version)
    const kube = await this.kube()
    try {
      const dryRun = this.flags['dry-run']
      if (!dryRun) {
        await confirmOrRefuse(`This will install the ztctl ${this.config.version} profile "${rendering.profile}" into the cluster of context ${kube.context} (${kube.server}), namespace ${rendering.namespace}. Proceed?`, {
          flag: '-y', skip: this.flags['skip-confirmation'],
        })
      }

      const {COMPONENT_TITLES, install, installSummary} = await import('../lib/kube/install/install.js')
      const progress = await createProgress(this.jsonEnabled() ? process.stderr : process.stdout)
      const result = await install({
        context: {home: this.home, kubeconfig: this.flags.kubeconfig}, dryRun, kube, onEvent: progressLines(progress, COMPONENT_TITLES, dryRun), readinessTimeoutMs, rendering,
      })
      const summary = installSummary(result, dryRun)
      if (dryRun && this.format === 'table') return this.printDryRun([...result.changes, ...result.pruned], summary)
      if (dryRun) return this.render(summary, () => undefined)
      return this.render(summary, () => doneText(result))
    } finally {
      kube.close()
    }
  }

  private async printDryRun(changes: Change[], data: unknown): Promise<unknown> {
    const {changeDiff} = await import('../lib/kube/install/diff.js')
    const changed = changes.filter((change) => change.action !== 'unchanged')
    for (const change of changed) {
      this.log(colorDiff(await changeDiff(change)))
      if (change.unchecked) this.log(chalk.yellow(`  (not checked by the server: namespace ${change.after?.metadata.namespace} does not exist yet)`))
    }

    this.log(changed.length === 0 ? 'Dry run: nothing would change.' : `Dry run: ${summarize(changes)}; nothing was changed.`)
    return data
  }
}

/** --readiness-timeout in milliseconds. */
function readinessTimeout(text: string): number {
  const seconds = parseDuration(text)
  if (seconds === undefined || seconds <= 0) {
    throw new ZtError('ZT_ERR_BAD_FLAG', `--readiness-timeout "${text}" is not a duration`, {exit: ExitCode.usage, suggestion: 'e.g. --readiness-timeout 5m'})
  }

  return seconds * 1000
}

/** istioctl's lines for install's events: a spinner per component, ✔ when it is ready, ✘ with the pods' problems. */
function progressLines(progress: Progress, titles: Record<Component, string>, dryRun: boolean): (event: InstallEvent) => void {
  return (event) => {
    switch (event.type) {
      case 'start': {
        progress.start(`Processing resources for ${titles[event.component]}${dryRun ? ' (dry run)' : ''}`)
        break
      }

      case 'wait': {
        progress.update(`${titles[event.component]}: ${event.message}`)
        break
      }

      case 'done': {
        progress.succeed(`${titles[event.component]} ${dryRun ? 'checked' : 'installed'} ${chalk.dim(`(${summarize(event.changes)})`)}`)
        break
      }

      case 'failed': {
        progress.fail(`${titles[event.component]} encountered an error: ${event.error.message}`)
        for (const line of problemLines(event.error)) progress.note(line)
        break
      }

      case 'pruned': {
        progress.succeed(`${dryRun ? 'Would prune' : 'Pruned'} what the new values no longer render: ${event.pruned.map((change) => change.ref).join(', ')}`)
        break
      }

      case 'note': {
        progress.note(chalk.dim(`  ${event.message}`))
        break
      }
    }
  }
}

function doneText(result: InstallResult): string {
  return [
    `${chalk.green('✔')} Installation complete`,
    result.unchanged
      ? `No changes: the cluster already runs profile ${result.profile} with these values (${result.changes.length} objects unchanged).`
      : `The ${result.profile} profile is installed in namespace ${result.namespace}. Check it with \`ztctl verify-install\`.`,
    `ztctl context ${result.context} (now current) reaches its controller: try \`ztctl identity list\`.`,
  ].join('\n')
}

function summarize(changes: readonly Change[]): string {
  const counts = (['created', 'configured', 'deleted', 'unchanged'] as const)
    .map((action) => [action, changes.filter((change) => change.action === action).length] as const)
    .filter(([, count]) => count > 0)
  if (counts.length === 1 && counts[0][0] === 'unchanged') return 'unchanged'
  return counts.map(([action, count]) => `${count} ${action}`).join(', ')
}

/** What a readiness error carries beyond its first line: the other pods' problems and the last log lines. */
function problemLines(error: ZtError): string[] {
  const problems = (error.details?.problems ?? []) as {logTail?: string[]; message: string; node?: string; pod: string}[]
  return problems.flatMap((problem, index) => [
    ...(index > 0 ? [`    pod ${problem.pod}${problem.node ? ` (node ${problem.node})` : ''}: ${problem.message}`] : []),
    ...(problem.logTail ? [`    last log lines of ${problem.pod}:`, ...problem.logTail.map((line) => `      ${line}`)] : []),
  ])
}

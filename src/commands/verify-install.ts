import {Flags} from '@oclif/core'
import chalk from 'chalk'

import {BaseCommand} from '../lib/cli/base-command.js'
import {durationFlag, kubernetesFlags} from '../lib/cli/flag-groups.js'
import {valuesFlags, valuesFromFlags} from '../lib/cli/values-flags.js'
import type {Verification} from '../lib/kube/install/verify.js'
import type {Rendering} from '../lib/kube/manifest/render.js'
import type {KubeClient} from '../lib/kube/rest.js'

export default class VerifyInstall extends BaseCommand<typeof VerifyInstall> {
  static override description = `Check an installation object by object: custom resources Established, the controller rolled out and answering /ready, every DaemonSet ready on every node, every object as install applies it; with hub.enabled, every node agent (and the host pod) attached to the hub, as the hub reports it, and why not from the agent's side. One ✔/✘ line per check, counts at the end, exit code 1 on any ✘ with what to look at.

With --traffic it then proves traffic: a temporary namespace labelled ztctl.io/dataplane-mode=ambient gets a server and a client pod, the client connects to the server, and the node agent's access log must show the connection over HBONE with both SPIFFE IDs; the namespace is always deleted.

It checks the profile and values recorded by the last install; --profile, --set and -f check against other values instead.`
  static override examples = ['<%= config.bin %> verify-install', '<%= config.bin %> verify-install -o json', '<%= config.bin %> verify-install --traffic --timeout 3m', '<%= config.bin %> verify-install -n ztctl-system --set controller.replicas=2']
  static override flags = {
    ...kubernetesFlags, ...valuesFlags,
    timeout: durationFlag('timeout', {default: '2m', dependsOn: ['traffic'], description: 'how long the --traffic probe may take (e.g. 90s, 3m); cleanup comes after'}),
    traffic: Flags.boolean({default: false, description: 'also send a connection between two probe pods through the mesh and prove it went over HBONE'}),
  }
  static override summary = 'Verify that ztctl is installed and working in a Kubernetes cluster'

  async run(): Promise<unknown> {
    const {findInstallation, noInstallation} = await import('../lib/kube/install/state.js')
    const {renderInstallation} = await import('../lib/kube/manifest/render.js')
    const {verifyInstall} = await import('../lib/kube/install/verify.js')
    const kube = await this.kube()
    try {
      const installation = await findInstallation(kube, this.flags.namespace)
      if (!installation) throw noInstallation(this.flags.namespace)
      const overridden = this.flags.profile || this.flags.set || this.flags.filename
      const resolved = overridden ? await valuesFromFlags({...this.flags, namespace: installation.namespace}, this.config.version, installation.profile) : installation
      const rendering = await renderInstallation(resolved, installation.version)
      const verification = await verifyInstall(kube, rendering)
      if (this.flags.traffic) await this.addTrafficChecks(kube, rendering, verification)
      if (verification.failed > 0) process.exitCode = 1
      return this.render(verification, () => report(verification))
    } finally {
      kube.close()
    }
  }

  private async addTrafficChecks(kube: KubeClient, rendering: Rendering, verification: Verification): Promise<void> {
    const {probeImage, verifyTraffic} = await import('../lib/kube/verify-traffic.js')
    const abort = new AbortController()
    const interrupt = (): void => abort.abort()
    process.once('SIGINT', interrupt)
    try {
      const checks = await verifyTraffic(kube, {...probeImage(rendering), signal: abort.signal, timeoutMs: this.flags.timeout})
      verification.checks.push(...checks)
      verification.failed += checks.filter((check) => !check.ok).length
    } finally {
      process.off('SIGINT', interrupt)
    }
  }
}

function report(verification: Verification): string {
  const lines: string[] = []
  for (const check of verification.checks) {
    const name = check.namespace ? `${check.name}.${check.namespace}` : check.name
    if (check.ok) {
      lines.push(`${chalk.green('✔')} ${check.kind}: ${name} ${check.message}`)
      continue
    }

    lines.push(`${chalk.red('✘')} ${check.kind}: ${name}: ${check.message}`)
    for (const hint of check.hints) lines.push(`    look at: ${hint}`)
    if (check.logTail) lines.push('    last log lines:', ...check.logTail.map((line) => `      ${line}`))
  }

  const plural = (count: number, kind: string) => `${count} ${kind}${count === 1 ? '' : kind.endsWith('s') ? 'es' : 's'}`
  const {counts} = verification
  const others = Object.entries(counts).filter(([kind]) => !['CustomResourceDefinition', 'DaemonSet', 'Deployment'].includes(kind)).reduce((sum, [, count]) => sum + count, 0)
  lines.push(
    `Checked ${plural(counts.CustomResourceDefinition ?? 0, 'custom resource definition')}`,
    `Checked ${plural(counts.Deployment ?? 0, 'Deployment')}`,
    ...(counts.DaemonSet ? [`Checked ${plural(counts.DaemonSet, 'DaemonSet')}`] : []),
    `Checked ${plural(others, 'other object')}`,
    verification.failed === 0
      ? `${chalk.green('✔')} ztctl (profile ${verification.profile}) is installed and verified successfully`
      : `${chalk.red('✘')} ${verification.failed} of ${verification.checks.length} checks failed: the ${verification.profile} installation in ${verification.namespace} is not working`,
  )
  return lines.join('\n')
}

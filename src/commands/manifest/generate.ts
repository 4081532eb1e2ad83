import {BaseCommand} from '../../lib/cli/base-command.js'
import {kubernetesFlags} from '../../lib/cli/flag-groups.js'
import {valuesFlags, valuesFromFlags} from '../../lib/cli/values-flags.js'

export default class ManifestGenerate extends BaseCommand<typeof ManifestGenerate> {
  static override description = `Print the Kubernetes objects of an installation as YAML (what \`ztctl install\` applies), without a cluster.

The output is deterministic (the same values give the same bytes) and can be applied with \`kubectl apply --server-side -f -\`; \`ztctl install\` adds waiting, pruning and verification.`
  static override examples = [
    '<%= config.bin %> manifest generate --profile ambient > ztctl.yaml',
    '<%= config.bin %> manifest generate --profile minimal --set controller.replicas=2 -f my-values.yaml',
  ]
  static override flags = {...valuesFlags, namespace: kubernetesFlags.namespace}

  async run(): Promise<unknown> {
    const {renderInstallation, toYaml} = await import('../../lib/kube/manifest/render.js')
    const rendering = await renderInstallation(await valuesFromFlags(this.flags, this.config.version), this.config.version)
    const objects = rendering.objects.map((item) => item.object)
    const list = {apiVersion: 'v1', items: objects, kind: 'List'}
    if (this.format === 'table' || this.format === 'yaml') {
      this.log((await toYaml(objects)).trimEnd())
      return list
    }

    return this.render(list, () => undefined)
  }
}

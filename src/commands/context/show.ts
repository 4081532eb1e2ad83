import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags} from '../../lib/cli/flag-groups.js'

export default class ContextShow extends BaseCommand<typeof ContextShow> {
  static override description = 'Show the current context (or the one --context names) and its identity'
  static override examples = ['<%= config.bin %> context show', '<%= config.bin %> context show --context staging -o yaml']
  static override flags = {...controllerFlags}

  async run(): Promise<unknown> {
    const {showContext} = await import('../../lib/client/contexts.js')
    const context = await showContext(this.home, this.flags.context)
    const cluster = context.kubernetes
    return this.render(context, () => [
      `Context:     ${context.name}`,
      `Kind:        ${context.kind ?? 'local'}`,
      `Controller:  ${context.controller}`,
      ...(cluster ? [
        `  kubeconfig: ${cluster.kubeconfig ?? '(default: $KUBECONFIG or ~/.kube/config)'}`,
        `  context:    ${cluster.context}`,
        `  namespace:  ${cluster.namespace}`,
      ] : []),
      `Identity:    ${context.identity}`,
      `  name:      ${context.identityName ?? '-'}`,
      `  SPIFFE ID: ${context.spiffe ?? '-'}`,
      `  expires:   ${context.certNotAfter ?? '-'}`,
    ].join('\n'))
  }
}

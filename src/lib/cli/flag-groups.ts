// Flags that several commands share, in groups a command opts into by spreading them into its own
// `flags` (`static flags = {...controllerFlags, ...waitFlags, agent: …}`): a flag appears only on the
// commands where it acts. Only -o/--output (and --json) are on every command (base-command.ts).
//
//   controllerFlags  --context          commands that talk to the controller
//   kubernetesFlags  --kubeconfig, --kube-context, -n   commands that talk to a Kubernetes cluster
//   logFlags         --log-level        long-running commands that write logs
//   waitFlags        --wait/--no-wait, --timeout   commands that change the mesh (wait for the agents)
//   dryRunFlags      --dry-run          commands that can show a change without making it
//   watchFlags       -w/--watch, --interval   views that can refresh until Ctrl-C
import {Flags} from '@oclif/core'

import {ExitCode, ZtError} from '../errors.js'
import {parseDuration} from './render.js'

export const outputFlag = Flags.option({
  char: 'o',
  description: 'output format',
  helpGroup: 'GLOBAL',
  options: ['table', 'json', 'yaml'] as const,
})

export const controllerFlags = {
  context: Flags.string({
    description: 'context to use (see `ztctl context list`); overrides the current context',
    env: 'ZTCTL_CONTEXT',
    helpGroup: 'GLOBAL',
  }),
}

export const kubernetesFlags = {
  // --context is the mesh context of the other commands: the kubeconfig's context has a name of its own.
  'kube-context': Flags.string({description: "the kubeconfig's context to use (default: its current-context)", env: 'ZTCTL_KUBE_CONTEXT', helpGroup: 'KUBERNETES'}),
  kubeconfig: Flags.string({description: 'path to a kubeconfig (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)', env: 'KUBECONFIG', helpGroup: 'KUBERNETES'}),
  namespace: Flags.string({char: 'n', description: 'Kubernetes namespace', helpGroup: 'KUBERNETES'}),
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const

export const logFlags = {
  'log-level': Flags.option({default: 'info', description: 'log level', env: 'ZTCTL_LOG_LEVEL', helpGroup: 'GLOBAL', options: LOG_LEVELS})(),
}

/** DEFAULT-style text ("30s", "2m", "500ms") in milliseconds; a ZtError naming --FLAG when it is not a duration above zero. */
function durationMs(flag: string, text: string): number {
  const seconds = parseDuration(text)
  if (seconds === undefined || seconds <= 0) {
    throw new ZtError('ZT_ERR_BAD_FLAG', `--${flag} ${JSON.stringify(text)} is not a duration`, {exit: ExitCode.usage, suggestion: `e.g. --${flag} 90s or --${flag} 3m`})
  }

  return seconds * 1000
}

/**
 * The duration flag --NAME (90s, 3m, 500ms) whose value is milliseconds: a bad value fails the parse, before
 * the command runs, as ZT_ERR_BAD_FLAG (usage). Help shows DEFAULT as written; a bad DEFAULT throws at once.
 */
export function durationFlag(name: string, options: {default: string; dependsOn?: string[]; description: string; helpGroup?: string}) {
  return Flags.custom<number>({
    ...options,
    default: durationMs(name, options.default),
    defaultHelp: async () => options.default,
    parse: async (text) => durationMs(name, text),
  })()
}

export const waitFlags = {
  timeout: durationFlag('timeout', {default: '30s', description: 'how long to wait for the agents to apply the change (e.g. 30s, 2m)', helpGroup: 'ROLLOUT'}),
  wait: Flags.boolean({
    allowNo: true,
    default: true,
    description: 'wait until every affected agent has applied the change and fail with its reason when one could not (--no-wait: return once the controller stored it)',
    helpGroup: 'ROLLOUT',
  }),
}

export const dryRunFlags = {
  'dry-run': Flags.boolean({description: 'check the input and print what would change; change nothing', helpGroup: 'ROLLOUT'}),
}

export const watchFlags = {
  interval: Flags.string({default: '2s', description: 'with --watch: time between refreshes (e.g. 2s, 500ms)', helpGroup: 'WATCH'}),
  watch: Flags.boolean({char: 'w', description: 'refresh until Ctrl-C (a screen on a terminal; one document per refresh otherwise)', helpGroup: 'WATCH'}),
}

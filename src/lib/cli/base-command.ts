// The one base command: global flags, output format, error rendering and exit codes.
// Commands stay thin: parse → call one lib function → this.render(...).
import {Command, Flags, Interfaces} from '@oclif/core'

import {errorText} from '../error-text.js'
import {ExitCode, ZtError} from '../errors.js'
import {type Home, resolveHome} from '../home/home.js'
import type {ControllerApi} from '../mesh/api.js'
import {type Column, type OutputFormat, renderData, renderTable} from './render.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>
export type BaseArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

export const outputFlag = Flags.option({
  char: 'o',
  description: 'output format',
  helpGroup: 'GLOBAL',
  options: ['table', 'json', 'yaml'] as const,
})

export abstract class BaseCommand<T extends typeof Command> extends Command {
  static override baseFlags = {
    context: Flags.string({
      description: 'context to use (see `ztctl context list`); overrides the current context',
      env: 'ZTCTL_CONTEXT',
      helpGroup: 'GLOBAL',
    }),
    'kube-context': Flags.string({
      description: 'kubeconfig context to use (Kubernetes commands; default: its current-context). --context is the mesh context',
      env: 'ZTCTL_KUBE_CONTEXT',
      helpGroup: 'GLOBAL',
    }),
    kubeconfig: Flags.string({
      description: 'path to a kubeconfig (Kubernetes commands; default $KUBECONFIG, else ~/.kube/config)',
      env: 'KUBECONFIG',
      helpGroup: 'GLOBAL',
    }),
    'log-level': Flags.option({
      default: 'info',
      description: 'log level of long-running commands',
      env: 'ZTCTL_LOG_LEVEL',
      helpGroup: 'GLOBAL',
      options: ['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const,
    })(),
    namespace: Flags.string({char: 'n', description: 'Kubernetes namespace', helpGroup: 'GLOBAL'}),
    output: outputFlag(),
  }

  static override enableJsonFlag = true

  protected args!: BaseArgs<T>
  protected flags!: BaseFlags<T>

  /** The output format: --json wins, then -o, else a table. */
  protected get format(): OutputFormat {
    if (this.jsonEnabled()) return 'json'
    const output = (this.flags as {output?: unknown}).output
    return output === 'json' || output === 'yaml' ? output : 'table'
  }

  override async catch(error: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<unknown> {
    if (ZtError.is(error)) {
      process.exitCode = error.exit
      if (this.jsonEnabled()) {
        this.logJson({error: error.toJSON()})
        return
      }

      this.logToStderr(errorText(error))
      return
    }

    // oclif's own parse and usage errors carry their exit code; render those the oclif way.
    if (error.oclif?.exit !== undefined) return super.catch(error)
    process.exitCode = ExitCode.failure
    this.logToStderr(errorText(error))
  }

  override async init(): Promise<void> {
    await super.init()
    const {args, flags} = await this.parse({
      args: this.ctor.args,
      baseFlags: (this.ctor as typeof BaseCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      flags: this.ctor.flags,
      strict: this.ctor.strict,
    })
    this.flags = flags as BaseFlags<T>
    this.args = args as BaseArgs<T>
  }

  /** Print data as JSON/YAML, or through `human` as a table or text. Returns the data for --json. */
  protected async render<D>(data: D, human: () => string | undefined): Promise<D> {
    const format = this.format
    if (format === 'json' && this.jsonEnabled()) return data // oclif prints the returned value
    if (format === 'table') {
      const text = human()
      if (text !== undefined && text !== '') this.log(text)
    } else {
      this.log(await renderData(data, format))
    }

    return data
  }

  /** The ztctl home: $ZTCTL_HOME, else oclif's XDG config and data folders. */
  protected get home(): Home {
    return resolveHome({configDir: this.config.configDir, dataDir: this.config.dataDir})
  }

  /**
   * Run `fn` with an authenticated controller connection from the current (or --context) context. The
   * connection opens on the first request, so input errors are reported before any network error.
   */
  protected async withController<R>(fn: (api: ControllerApi) => Promise<R>): Promise<R> {
    let session: Promise<Awaited<ReturnType<typeof import('../client/session.js').openSession>>> | undefined
    const open = async () => {
      const {openSession} = await import('../client/session.js')
      return openSession({context: this.flags.context, home: this.home})
    }

    const api: ControllerApi = {
      request: async (method, path, body) => (await (session ??= open())).request(method, path, body),
    }
    try {
      return await fn(api)
    } finally {
      if (session) await session.then((client) => client.close(), () => {})
    }
  }

  /** The Kubernetes cluster of --kubeconfig / --kube-context (client-node loads lazily, only here). */
  protected async kube(): Promise<import('../kube/rest.js').KubeClient> {
    const {connectKube} = await import('../kube/rest.js')
    return connectKube({context: this.flags['kube-context'], kubeconfig: this.flags.kubeconfig})
  }

  protected table<Row>(rows: readonly Row[], columns: readonly Column<Row>[]): string {
    return renderTable(rows, columns)
  }
}

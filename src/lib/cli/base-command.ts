// The one base command: the output flags, error rendering and exit codes for every command, oclif's
// own parse errors included. Commands stay thin: parse → call one lib function → this.render(...).
// Shared flags beyond -o/--json live in flag-groups.ts; a command spreads the groups it acts on.
import {Command, Interfaces} from '@oclif/core'

import {errorText, warningText} from '../error-text.js'
import {ExitCode, ZtError} from '../errors.js'
import {type Home, resolveHome} from '../home/home.js'
import type {ControllerApi} from '../mesh/api.js'
import {outputFlag} from './flag-groups.js'
import {type Column, type OutputFormat, parseDuration, renderData, renderTable} from './render.js'

export {outputFlag} from './flag-groups.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>
export type BaseArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

/** The flags of flag-groups.ts, as a command that may or may not have them sees them. */
interface GroupFlags {
  context?: string
  'dry-run'?: boolean
  interval?: string
  'kube-context'?: string
  kubeconfig?: string
  output?: string
  /** milliseconds (durationFlag) */
  timeout?: number
  wait?: boolean
  watch?: boolean
}

export abstract class BaseCommand<T extends typeof Command> extends Command {
  static override baseFlags = {output: outputFlag()}

  static override enableJsonFlag = true

  protected args!: BaseArgs<T>
  protected flags!: BaseFlags<T>

  /** The output format: --json wins, then -o, else a table. Before parsing (a parse error), read from argv. */
  protected get format(): OutputFormat {
    if (this.jsonEnabled()) return 'json'
    const output = this.flags ? (this.flags as GroupFlags).output : requestedOutput(this.argv)
    return output === 'json' || output === 'yaml' ? output : 'table'
  }

  /** The ztctl home: $ZTCTL_HOME, else oclif's XDG config and data folders. */
  protected get home(): Home {
    return resolveHome({configDir: this.config.configDir, dataDir: this.config.dataDir})
  }

  /** --dry-run, and how long a mesh change waits for the agents (waitFlags; none with --no-wait). */
  protected get changeOptions(): {dryRun: boolean; waitMs?: number} {
    const flags = this.flags as GroupFlags
    const dryRun = flags['dry-run'] === true
    if (flags.wait === false || dryRun) return {dryRun}
    return {dryRun, waitMs: flags.timeout ?? 30_000}
  }

  override async catch(error: Error & {code?: string}): Promise<unknown> {
    // this.exit(n) unwinds as an ExitError: oclif sets the code.
    if (error.code === 'EEXIT') return super.catch(error)
    process.exitCode = ZtError.is(error) ? error.exit : ExitCode.failure
    const format = wantsJson(this.argv) ? 'json' : this.format
    if (format === 'table') {
      process.stderr.write(errorText(error) + '\n')
      return
    }

    // Machine-readable on stdout, whatever failed; a bug's stack also goes to stderr for the report.
    const body = ZtError.is(error)
      ? {error: error.toJSON()}
      : {error: {code: 'ZT_ERR_INTERNAL', exit: ExitCode.failure, message: error.message, suggestion: 'a bug in ztctl; please report it with the stack printed on stderr'}}
    if (!ZtError.is(error)) process.stderr.write(errorText(error) + '\n')
    process.stdout.write((await renderData(body, format)) + '\n')
  }

  override async init(): Promise<void> {
    await super.init()
    try {
      const {args, flags} = await this.parse({
        args: this.ctor.args,
        baseFlags: (this.ctor as typeof BaseCommand).baseFlags,
        enableJsonFlag: this.ctor.enableJsonFlag,
        flags: this.ctor.flags,
        strict: this.ctor.strict,
      })
      this.flags = flags as BaseFlags<T>
      this.args = args as BaseArgs<T>
    } catch (error) {
      throw ZtError.is(error) ? withoutParseWrapper(error) : usageError(error as Error, this.id ?? '')
    }
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

  /**
   * Render LOAD's data once, or with --watch (watchFlags) again every --interval until Ctrl-C (exit 130):
   * a refreshed screen on a terminal, one document per refresh otherwise. A user error while watching
   * (the controller restarting) is shown in place of the data, and the watch goes on.
   */
  protected async watch<D>(load: () => Promise<D>, human: (data: D) => string): Promise<D | undefined> {
    const flags = this.flags as GroupFlags
    if (!flags.watch) {
      const data = await load()
      return this.render(data, () => human(data))
    }

    const seconds = parseDuration(flags.interval ?? '2s')
    if (seconds === undefined || seconds < 0.1) {
      throw new ZtError('ZT_ERR_USAGE', `--interval ${JSON.stringify(flags.interval)} is not a duration of at least 100ms`, {exit: ExitCode.usage, suggestion: 'e.g. --interval 2s'})
    }

    const [{untilStopped}, {setTimeout: sleep}] = await Promise.all([import('./signals.js'), import('node:timers/promises')])
    const stop = new AbortController()
    void untilStopped().then(() => stop.abort())
    const format = this.format
    const screen = format === 'table' && process.stdout.isTTY === true
    while (!stop.signal.aborted) {
      let text: string
      try {
        const data = await load()
        text = format === 'table' ? human(data) : format === 'json' ? JSON.stringify(data) : `---\n${await renderData(data, 'yaml')}`
      } catch (error) {
        if (!ZtError.is(error)) throw error
        text = format === 'table' ? errorText(error) : JSON.stringify({error: error.toJSON()})
      }

      const header = screen ? `\u001B[2J\u001B[HEvery ${flags.interval}: ztctl ${this.id?.replaceAll(':', ' ')}    ${new Date().toLocaleTimeString()}\n\n` : ''
      process.stdout.write(header + text + (format === 'table' && !screen ? '\n\n' : '\n'))
      await sleep(seconds * 1000, undefined, {signal: stop.signal}).catch(() => {})
    }

    return undefined
  }

  /** The Kubernetes cluster of --kubeconfig / --kube-context (kubernetesFlags); client-node loads lazily, only here. */
  protected async kube(): Promise<import('../kube/rest.js').KubeClient> {
    const flags = this.flags as GroupFlags
    const {connectKube} = await import('../kube/rest.js')
    return connectKube({context: flags['kube-context'], kubeconfig: flags.kubeconfig})
  }

  protected table<Row>(rows: readonly Row[], columns: readonly Column<Row>[]): string {
    return renderTable(rows, columns)
  }

  /** A warning on stderr, in every output format (stdout stays one document). */
  protected warning(message: string): void {
    process.stderr.write(warningText(message) + '\n')
  }

  /**
   * Run `fn` with an authenticated controller connection from the current (or --context) context. The
   * connection opens on the first request, so input errors are reported before any network error.
   */
  protected async withController<R>(fn: (api: ControllerApi) => Promise<R>): Promise<R> {
    let session: Promise<Awaited<ReturnType<typeof import('../client/session.js').openSession>>> | undefined
    const open = async () => {
      const {openSession} = await import('../client/session.js')
      return openSession({context: (this.flags as GroupFlags).context, home: this.home})
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
}

/** Any error from oclif's parser (unknown flag, bad value, missing or extra argument) as ZT_ERR_USAGE. */
function usageError(error: Error, id: string): ZtError {
  const lines = error.message.split('\n').map((line) => line.trim()).filter((line) => line !== '' && !/^See more help with/.test(line))
  const note = lines.findIndex((line) => line.startsWith('Note:'))
  const message = (note === -1 ? lines : lines.slice(0, note)).join(' ').replace(/:\s+/, ': ')
  const command = `ztctl ${id.replaceAll(':', ' ')}`
  const hint = note === -1 ? '' : ` (${lines.slice(note).join(' ').replace(/^Note:\s*/, '')})`
  return new ZtError('ZT_ERR_USAGE', message || 'invalid command line', {cause: error, exit: ExitCode.usage, suggestion: `see \`${command} --help\`${hint}`})
}

/** `--json` before any `--`: also for commands without the flag, whose parse error is then about it. */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--')
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json')
}

/** -o/--output as typed, for errors raised before (or by) parsing. */
export function requestedOutput(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length && argv[i] !== '--'; i++) {
    const arg = argv[i]
    if (arg === '-o' || arg === '--output') return argv[i + 1]
    if (arg.startsWith('--output=')) return arg.slice('--output='.length)
    if (arg.startsWith('-o') && !arg.startsWith('--')) return arg.slice(2).replace(/^=/, '')
  }

  return undefined
}

/** oclif wraps the message of an error thrown by a flag's parse (durationFlag) in its own lines: ours is complete. */
function withoutParseWrapper(error: ZtError): ZtError {
  error.message = error.message.replace(/^Parsing --\S+ \n\t/, '').replace(/\nSee more help with --help$/, '')
  return error
}

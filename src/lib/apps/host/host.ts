// The apps' side of the agent (docs/hbone.md "Apps"): every admitted app stream comes here with the
// identity its HBONE admission established. The host reads the OPEN frame (bounded in time), hands the
// session to the app's runner, logs who did what, when, for how long and how it ended, and answers
// refusals and failures with an ERROR frame. Sessions per app are bounded; metrics count them.
import type {Duplex} from 'node:stream'

import type {AppName} from '../../config/types.js'
import {escapeLabel} from '../../proxy/observe/metrics.js'
import {FrameChannel} from '../channel.js'
import {readOpen} from '../messages.js'
import {frameName, FrameType, ProtocolError} from '../wire.js'
import {FileCatalog, type FileStatus} from './file-catalog.js'
import {runFile} from './files.js'
import {runScript} from './scripts.js'
import {AppError, type AppHostContext, type AppRunner, type AppSession} from './session.js'
import {runTerminal} from './terminal.js'

export type {AppSession} from './session.js'

/** How long an admitted stream may take to send its OPEN. */
const OPEN_TIMEOUT_MS = 10_000
/** After our end of the stream: how long the client may take to end its own before the stream is destroyed. */
const CLOSE_GRACE_MS = 2000
const MAX_SESSIONS: Record<AppName, number> = {file: 64, script: 32, terminal: 32}
const RUNNERS: {[A in AppName]: AppRunner<A>} = {file: runFile, script: runScript, terminal: runTerminal}

export interface SessionBytes {
  /** from the client */
  received: number
  /** to the client */
  sent: number
}

export interface AppHostDump {
  files: FileStatus[]
  sessions: Record<AppName, number>
}

type Outcome = 'error' | 'ok' | 'refused'

export class AppHost {
  readonly files = new FileCatalog()
  /** published files this agent cannot serve (name → why), from the last configure() */
  private fileProblems = new Map<string, string>()
  private readonly live: Record<AppName, number> = {file: 0, script: 0, terminal: 0}
  private readonly totals = new Map<string, number>()

  constructor(private readonly context: AppHostContext) {}

  /** Serve one app stream until it ends; resolves with its bytes. Never rejects. */
  async serve(stream: Duplex, session: AppSession): Promise<SessionBytes> {
    const channel = new FrameChannel(stream, 'toAgent')
    stream.on('error', () => {}) // a reset ends the session through the channel's reads
    const {app} = session
    const fields = {app, connection: session.connectionId, identity: session.identity, scope: 'app', source: session.source, spiffe: session.spiffe}
    const startedAt = Date.now()
    this.live[app]++
    let outcome: Outcome = 'ok'
    try {
      if (this.live[app] > MAX_SESSIONS[app]) throw new AppError('ZT_ERR_APP_BUSY', `${this.context.agent} already runs ${MAX_SESSIONS[app]} ${app} sessions`, 'try again when one has ended')
      const config = this.context.state().app(app)
      if (!config) throw new AppError('ZT_ERR_APP_OFF', `the ${app} app is off on ${this.context.agent}`)
      const frame = await channel.next(OPEN_TIMEOUT_MS)
      if (!frame) return channel.bytes // admitted, then gone before asking anything
      if (frame.type !== FrameType.Open) throw new ProtocolError(`expected OPEN, got ${frameName(frame.type)}`)
      const open = readOpen(app, frame)
      const started = (details: Record<string, unknown>): void => this.context.logger().info({...fields, ...details}, `${app} session started`)
      const {quiet, ...result} = await RUNNERS[app](channel, open as never, session, {...this.context, files: this.files, started}, config)
      this.context.logger()[quiet ? 'debug' : 'info']({...fields, ...result, durationMs: Date.now() - startedAt}, `${app} session ended`)
    } catch (error) {
      const refusal = asAppError(error)
      outcome = error instanceof AppError ? 'refused' : 'error'
      channel.send(FrameType.Error, {code: refusal.code, message: refusal.message, suggestion: refusal.suggestion})
      this.context.logger().warn({...fields, code: refusal.code, durationMs: Date.now() - startedAt, error: refusal.message}, `${app} session ${outcome === 'refused' ? 'refused' : 'failed'}`)
    } finally {
      this.live[app]--
      this.count(app, outcome)
      finish(channel)
    }

    return channel.bytes
  }

  /** A new configuration: check and (re)hash the published files. */
  async configure(): Promise<void> {
    this.fileProblems = await this.files.configure(this.context.state().publishedFiles())
  }

  /** Why a published file cannot be served, or undefined when it can (its resource status). */
  fileProblem(name: string): string | undefined {
    return this.fileProblems.get(name)
  }

  dump(): AppHostDump {
    return {files: this.files.status(), sessions: {...this.live}}
  }

  renderMetrics(): string {
    const lines = [
      '# HELP ztctl_app_sessions_total App sessions (terminal, file, script) by how they ended: ok, refused (an app rule or ERROR), error.',
      '# TYPE ztctl_app_sessions_total counter',
      ...[...this.totals].map(([key, value]) => {
        const [app, outcome] = key.split(' ')
        return `ztctl_app_sessions_total{app="${app}",outcome="${outcome}"} ${value}`
      }),
      '# HELP ztctl_app_sessions_active App sessions open now.',
      '# TYPE ztctl_app_sessions_active gauge',
      ...Object.entries(this.live).map(([app, count]) => `ztctl_app_sessions_active{app="${app}"} ${count}`),
      ...this.files.renderMetrics(escapeLabel),
    ]
    return lines.join('\n') + '\n'
  }

  private count(app: AppName, outcome: Outcome): void {
    const key = `${app} ${outcome}`
    this.totals.set(key, (this.totals.get(key) ?? 0) + 1)
  }
}

function asAppError(error: unknown): AppError {
  if (error instanceof AppError) return error
  if (error instanceof ProtocolError) return new AppError(error.code, `app stream protocol error: ${error.message}`)
  return new AppError('ZT_ERR_APP_FAILED', `the app failed: ${(error as Error).message}`)
}

/** End our side, and destroy the stream if the client does not end its own soon. */
function finish(channel: FrameChannel): void {
  channel.end()
  const {stream} = channel
  if (stream.destroyed) return
  const timer = setTimeout(() => stream.destroy(), CLOSE_GRACE_MS)
  timer.unref()
  stream.once('close', () => clearTimeout(timer))
}

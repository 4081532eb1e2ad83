// What every app's runner on the agent shares: who the session is for, the agent's view, the refusal a
// client sees as ERROR, and the outcome that goes into the session's log line.
import type {AgentApp, AppName} from '../../config/types.js'
import type {Logger} from '../../proxy/observe/log.js'
import type {MeshState} from '../../proxy/state/state.js'
import type {FrameChannel} from '../channel.js'
import type {OpenMessages} from '../messages.js'
import type {FileCatalog} from './file-catalog.js'

/** The admitted stream's source, from its HBONE admission (the certificate, never the stream's content). */
export interface AppSession {
  app: AppName
  /** the connection's id in the agent's registry (its access-log line carries it too) */
  connectionId: number
  /** the source identity's name (or NS/SA of a workload) */
  identity: string
  /** `ip:port` the HBONE connection came from */
  source: string
  spiffe?: string
}

export interface AppHostContext {
  /** this agent's name */
  agent: string
  logger: () => Logger
  state: () => MeshState
}

export interface RunnerContext extends AppHostContext {
  files: FileCatalog
  /** log `APP session started` with these details */
  started: (details: Record<string, unknown>) => void
}

/** A refusal or failure the client reads as an ERROR frame: stable code, words, what to do. */
export class AppError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly suggestion?: string,
  ) {
    super(message)
  }
}

/** What a runner reports when its session ended, for the session's log line (quiet: at debug level, e.g. a file's stat). */
export type SessionOutcome = Record<string, unknown> & {exitCode?: null | number; quiet?: boolean; signal?: string}

export type AppRunner<A extends AppName> = (channel: FrameChannel, open: OpenMessages[A], session: AppSession, context: RunnerContext, config: AgentApp) => Promise<SessionOutcome>

/** The child's environment: a login-like minimum (never the agent's own variables) plus who is connected. */
export function sessionEnv(session: AppSession, agent: string, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {}
  for (const name of ['HOME', 'LANG', 'LC_ALL', 'LOGNAME', 'PATH', 'SHELL', 'TZ', 'USER']) {
    const value = process.env[name]
    if (value !== undefined) env[name] = value
  }

  env.PATH ??= '/usr/local/bin:/usr/bin:/bin'
  return {...env, ZTCTL_AGENT: agent, ZTCTL_IDENTITY: session.identity, ZTCTL_SOURCE: session.source, ...extra}
}

// A client's app session: the stream opened (connect.ts), OPEN sent, READY awaited; an ERROR the agent
// sends at any point becomes a ZtError in its words (code, message, suggestion).
import type {AppName} from '../../config/types.js'
import {ExitCode, type ExitCodeValue, ZtError} from '../../errors.js'
import {FrameChannel} from '../channel.js'
import {type ErrorMessage, type OpenMessages, openPayload, readError} from '../messages.js'
import {type Frame, frameName, FrameType, ProtocolError} from '../wire.js'
import {appAgent, type AppPool, type MeshClient, openAppStream} from './connect.js'

/** How long the agent may take to answer OPEN (a file is hashed by then, a shell started). */
const READY_TIMEOUT_MS = 30_000

export interface AppConnection {
  agent: string
  channel: FrameChannel
  /** end the stream (the pool, and with it the HBONE connection, stays the caller's) */
  close(): void
  ready: Frame
}

/** Open APP on AGENT through POOL with OPEN and wait for READY. */
export async function startAppSession<A extends AppName>(client: MeshClient, pool: AppPool, agentName: string, app: A, open: OpenMessages[A]): Promise<AppConnection> {
  const agent = appAgent(client, agentName, app)
  const stream = await openAppStream(pool, client, agent, app)
  const channel = new FrameChannel(stream, 'toClient')
  const close = (): void => channel.destroy()

  try {
    channel.send(FrameType.Open, openPayload<A>(open))
    const ready = await channel.next(READY_TIMEOUT_MS)
    if (!ready) throw new ZtError('ZT_ERR_APP_CLOSED', `agent ${agentName} closed the ${app} stream without answering`, {exit: ExitCode.unreachable})
    if (ready.type === FrameType.Error) throw agentError(readError(ready), agentName)
    if (ready.type !== FrameType.Ready) throw new ProtocolError(`expected READY, got ${frameName(ready.type)}`)
    return {agent: agentName, channel, close, ready}
  } catch (error) {
    close()
    throw asZtError(error, agentName, app)
  }
}

const EXIT_BY_CODE: Record<string, ExitCodeValue> = {
  ZT_ERR_APP_BUSY: ExitCode.conflict,
  ZT_ERR_APP_FORBIDDEN: ExitCode.auth,
  ZT_ERR_APP_OFF: ExitCode.notFound,
  ZT_ERR_FILE_NOT_FOUND: ExitCode.notFound,
}

/** The agent's ERROR frame as a ZtError. */
export function agentError(error: ErrorMessage, agent: string): ZtError {
  return new ZtError(error.code, `agent ${agent}: ${error.message}`, {exit: EXIT_BY_CODE[error.code] ?? ExitCode.failure, suggestion: error.suggestion})
}

/** A protocol or stream failure in words (a ZtError passes through). */
export function asZtError(error: unknown, agent: string, app: AppName): ZtError {
  if (ZtError.is(error)) return error
  if (error instanceof ProtocolError) return new ZtError(error.code, `the ${app} stream of agent ${agent} broke the app protocol: ${error.message}`)
  const code = (error as NodeJS.ErrnoException).code
  return new ZtError('ZT_ERR_APP_CLOSED', `the ${app} stream of agent ${agent} failed: ${code ? `${code}: ` : ''}${(error as Error).message}`, {
    exit: ExitCode.unreachable,
    suggestion: `check that agent ${agent} still runs (\`ztctl proxy-status\`)`,
  })
}

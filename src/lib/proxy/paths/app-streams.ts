// The app path (docs/hbone.md "Apps"): a CONNECT admitted to one of this agent's own apps (terminal, file,
// script) ends here instead of at a dialled target. It is answered 200 at once and its bytes go to the
// agent's app host, on either engine: node:http2 hands over the stream itself, the native engine one end
// of a socketpair (acceptPair). Registered, accounted and logged like a tunnel, so a policy change,
// a revocation or the drain deadline closes it the same way.
import {constants as http2Constants, type ServerHttp2Stream} from 'node:http2'
import {Socket} from 'node:net'
import type {Duplex} from 'node:stream'

import type {AppName} from '../../config/types.js'
import type {HboneEngine} from '../hbone/hbone-engine.js'
import type {Logger} from '../observe/log.js'
import {parseHostPort} from '../address.js'
import {appOfTarget} from '../state/apps.js'
import type {Admission} from './hbone-admission.js'
import type {ConnectionTracker} from './connection.js'

/** Who an app stream is for, from its admission. */
export interface AppStreamSession {
  app: AppName
  connectionId: number
  identity: string
  source: string
  spiffe?: string
}

/** The agent's app host: serves one stream, resolves with its bytes once it ended (never rejects). */
export type AppStreamHandler = (stream: Duplex, session: AppStreamSession) => Promise<{received: number; sent: number}>

export interface AppPathContext {
  /** the app host, once an app is enabled on this agent */
  apps?: () => AppStreamHandler | undefined
  logger: () => Logger
  tracker: ConnectionTracker
}

type Admitted = Admission & {allowed: true}

/** The app an admitted CONNECT is for, or undefined for a tunnel (dial its target). */
export const admittedApp = (admission: Admitted): AppName | undefined => appOfTarget(admission.target)

function sessionOf(admission: Admitted, app: AppName): AppStreamSession {
  const {labels, record} = admission
  return {app, connectionId: record.id, identity: labels.sourceWorkload ?? 'unknown', source: record.sourceAddress, spiffe: record.sourceSpiffe}
}

/** node:http2: answer 200 and hand the stream over. */
export function serveNodeAppStream(stream: ServerHttp2Stream, admission: Admitted, app: AppName, context: AppPathContext): boolean {
  const handler = context.apps?.()
  if (!handler) return false
  stream.respond({':status': 200})
  const finish = context.tracker.opened(admission.record, admission.labels, () => {
    if (!stream.closed) stream.close(http2Constants.NGHTTP2_CANCEL)
  })
  void handler(stream, sessionOf(admission, app)).then(({received, sent}) => {
    // The tracker's "plain side" is the app: it read what the client sent, it wrote what the client got.
    const done = (): void => finish({fromPlain: sent, toPlain: received})
    if (stream.closed) done()
    else stream.once('close', done)
  })
  return true
}

/** Native engine: answer 200 with a socketpair as the stream's plain side; the app host holds our end. */
export function serveNativeAppStream(engine: HboneEngine, tunnelId: number, admission: Admitted, app: AppName, context: AppPathContext): boolean {
  const handler = context.apps?.()
  if (!handler) return false
  const fd = engine.native.acceptPair(tunnelId)
  if (fd < 0) return true // the client went away meanwhile: nothing to account
  const finish = context.tracker.opened(admission.record, admission.labels, () => engine.native.abort(tunnelId, 'closed by the agent'))
  const socket = new Socket({allowHalfOpen: true, fd, readable: true, writable: true})
  engine.watchTunnel(tunnelId, {
    closed(fromPlain, toPlain, error) {
      finish({fromPlain, toPlain}, error)
      // The client's reset reaches our end of the pair as a plain end of file: say the stream is gone.
      socket.destroy()
    },
  })
  void handler(socket, sessionOf(admission, app))
  return true
}

/** B's own line for an app refused at admission (its access-log line says the same for the metrics' sake). */
export function logAppRefusal(logger: Logger, admission: Admission & {allowed: false}): void {
  if (!admission.clientReason) return
  const {record} = admission
  const app = appOfTarget(parseHostPort(record.hboneTarget) ?? {host: '', port: 0}) ?? 'app'
  logger.warn(
    {app, connection: record.id, error: admission.message, identity: admission.labels.sourceWorkload, scope: 'app', source: record.sourceAddress, spiffe: record.sourceSpiffe},
    `${app} session refused`,
  )
}

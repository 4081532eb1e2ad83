// One place that turns a connection's life into registry entries, metrics and the access-log line,
// shared by both directions so they report alike (docs/hbone.md "Observability").
import type {Http2Stream} from 'node:http2'
import type {Socket} from 'node:net'

import {accessLogFields, type Logger} from '../observe/log.js'
import type {Metrics, TrafficLabels} from '../observe/metrics.js'
import type {CloseReason, ConnectionRecord, ConnectionRegistry} from '../observe/registry.js'
import {relay} from '../hbone/relay.js'

/** Bytes read from and written to the plain TCP side of a tunnel. */
export interface PlainBytes {
  fromPlain: number
  toPlain: number
}

export class ConnectionTracker {
  constructor(
    private readonly registry: ConnectionRegistry,
    private readonly metrics: Metrics,
    private readonly logger: () => Logger,
  ) {}

  newId(): number {
    return this.registry.newId()
  }

  /** How many open connections (either data path's) the predicate selects. */
  countOpen(predicate: (record: ConnectionRecord) => boolean): number {
    return this.registry.count(predicate)
  }

  /**
   * Relay SOCKET (the plain TCP side) and STREAM (the HBONE side) and account for it. Bytes come from
   * the socket's counters at close, never from per-chunk listeners.
   */
  established(record: ConnectionRecord, labels: TrafficLabels, socket: Socket, stream: Http2Stream): void {
    const finish = this.opened(record, labels, () => tunnel.abort())
    const tunnel = relay(socket, stream, (error) =>
      finish({fromPlain: socket.bytesRead, toPlain: socket.bytesWritten}, error && !isBenign(error) ? describeRelayError(error) : undefined),
    )
  }

  /**
   * A connection is established (by either data path): count it, register it (ABORT tears it down when
   * a policy, revocation or drain closes it) and return what to call once, when it has closed.
   */
  opened(record: ConnectionRecord, labels: TrafficLabels, abort: () => void): (bytes: PlainBytes, problem?: string) => void {
    let closeReason: CloseReason | undefined
    const series = this.metrics.connectionOpened(labels)
    const logger = this.logger()
    if (logger.isLevelEnabled('debug')) logger.debug(accessLogFields(record, {received: 0, sent: 0}), 'connection opened')
    this.registry.add(record, (reason) => {
      closeReason ??= reason
      abort()
    })
    return ({fromPlain, toPlain}, problem) => {
      this.registry.remove(record.id)
      // Istio's convention: "received" is the request direction (source → destination).
      const request = record.direction === 'outbound' ? fromPlain : toPlain
      const response = record.direction === 'outbound' ? toPlain : fromPlain
      if (closeReason) this.metrics.connectionClosed({...labels, responseFlags: closeReason.flag}, {received: request, sent: response})
      else this.metrics.connectionClosed(labels, {received: request, sent: response}, series)
      // The access log speaks from the reporter's own point of view.
      const own = record.direction === 'outbound' ? {received: response, sent: request} : {received: request, sent: response}
      const error = closeReason?.message ?? problem
      const closeLogger = this.logger()
      if (error) closeLogger.error({...accessLogFields(record, own), error}, 'connection complete')
      else if (closeLogger.isLevelEnabled('info')) closeLogger.info(accessLogFields(record, own), 'connection complete')
    }
  }

  /** A connection refused before it carried data: counted (opened+closed with a flag) and logged with why. */
  refused(record: ConnectionRecord, labels: TrafficLabels, reason: CloseReason): void {
    const flagged = {...labels, responseFlags: reason.flag}
    this.metrics.connectionClosed(flagged, {received: 0, sent: 0}, this.metrics.connectionOpened(flagged))
    this.logger().error({...accessLogFields(record, {received: 0, sent: 0}), error: reason.message}, 'connection complete')
  }
}

/** Resets by a peer that is simply done are normal endings, not failures worth an error line. */
function isBenign(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code
  return code === 'ECONNRESET' || code === 'EPIPE' || error.message === 'aborted'
}

function describeRelayError(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code
  return code ? `${code}: ${error.message}` : error.message
}

// The data plane's logging: the shared JSON logger (src/lib/log) and the access-log line written once
// per connection when it closes.
import type {ConnectionRecord} from './registry.js'

export {createLogger, isLogLevel, LOG_LEVELS, type Logger, type LoggerOptions, type LogLevel} from '../../log/logger.js'

/** ztunnel's access-log fields, from the reporter's own point of view (bytes are not flipped). */
export function accessLogFields(record: ConnectionRecord, bytes: {received: number; sent: number}, now = Date.now()): Record<string, unknown> {
  return {
    scope: 'access',
    'src.addr': record.sourceAddress,
    'src.identity': record.sourceSpiffe,
    'dst.addr': record.destinationAddress,
    'dst.hbone_addr': record.hboneTarget,
    'dst.service': record.service,
    'dst.workload': record.destinationAgent,
    'dst.identity': record.destinationSpiffe,
    direction: record.direction,
    bytes_sent: bytes.sent,
    bytes_recv: bytes.received,
    duration: `${now - record.startedAt}ms`,
    id: record.id,
  }
}

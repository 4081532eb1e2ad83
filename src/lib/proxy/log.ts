// Logging: one pino root logger writing JSON lines (ztunnel's JSON shape: level label, time, scope,
// message), and the access-log line written once per connection when it closes.
import type {Logger} from 'pino'

import type {ConnectionRecord} from './registry.js'

export type {Logger} from 'pino'
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export interface LoggerOptions {
  /** where JSON lines go; default: stdout (asynchronously buffered) */
  destination?: NodeJS.WritableStream
  level: LogLevel
}

export async function createLogger(options: LoggerOptions): Promise<Logger> {
  const {pino} = await import('pino')
  const destination = options.destination ?? pino.destination({dest: 1, sync: false})
  return pino(
    {
      base: undefined,
      formatters: {level: (label) => ({level: label})},
      level: options.level,
      messageKey: 'message',
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  )
}

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value)
}

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

// One logger for every long-running ztctl process (controller, agent): pino writing JSON lines in
// ztunnel's shape — level label, ISO time, message — so one jq filter reads them all.
import type {Logger} from 'pino'

export type {Logger} from 'pino'
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export interface LoggerOptions {
  /** where JSON lines go: a stream, or a file descriptor (2 for stderr); default stdout, asynchronously buffered */
  destination?: NodeJS.WritableStream | number
  level: LogLevel
  /** wrap the destination (the agent keeps its recent lines for /logs) */
  tee?: (destination: {write(line: string): unknown}) => {write(line: string): unknown}
}

export async function createLogger(options: LoggerOptions): Promise<Logger> {
  const {pino} = await import('pino')
  const base =
    typeof options.destination === 'object' ? options.destination : pino.destination({dest: options.destination ?? 1, sync: false})
  const destination = (options.tee ? options.tee(base) : base) as NodeJS.WritableStream
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


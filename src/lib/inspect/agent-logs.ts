// `ztctl logs AGENT [-f]` and `ztctl proxy-config log AGENT --level`: the agent's admin port keeps its
// recent JSON log lines (/logs, followed as they come with -f) and sets its level (/logging).
import type {LogLevel} from '../log/logger.js'
import {adminRequest, type DumpSource} from './proxy-config.js'

/** One log line: the agent's JSON object, or the raw text when a line is not JSON. */
export type LogLine = Record<string, unknown> | string

export interface LogOptions {
  follow?: boolean
  signal?: AbortSignal
  tail: number
}

/** Read the agent's last TAIL lines, and with follow every new one until SIGNAL aborts or the agent goes away. */
export async function readAgentLogs(source: DumpSource, options: LogOptions, onLine: (line: LogLine) => void): Promise<void> {
  const query = `/logs?tail=${options.tail}${options.follow ? '&follow=1' : ''}`
  const {response} = await adminRequest(source, query, {signal: options.signal ?? AbortSignal.timeout(5000)})
  let pending = ''
  try {
    for await (const chunk of response.body! as AsyncIterable<Uint8Array>) {
      pending += Buffer.from(chunk).toString('utf8')
      const lines = pending.split('\n')
      pending = lines.pop()!
      for (const line of lines) if (line.trim() !== '') onLine(parseLine(line))
      if (pending.length > 1024 * 1024) pending = ''
    }
  } catch (error) {
    if (!options.signal?.aborted) throw error
  }
}

function parseLine(line: string): LogLine {
  try {
    const value = JSON.parse(line) as unknown
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : line
  } catch {
    return line
  }
}

/** Set the agent's log level (or, without LEVEL, read it): the admin port's POST /logging. */
export async function agentLogLevel(source: DumpSource, level?: LogLevel): Promise<{level: string}> {
  const {response} = await adminRequest(source, `/logging${level ? `?level=${level}` : ''}`, {method: 'POST', signal: AbortSignal.timeout(5000)})
  const text = await response.text()
  return {level: /current log level is (\w+)/.exec(text)?.[1] ?? text.trim()}
}

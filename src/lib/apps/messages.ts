// The JSON payloads of an app stream's control frames (wire.ts), shared by the agent and the client, and
// the checks each side runs on what the other sent: a field of the wrong shape is a ProtocolError.
import type {AppName} from '../config/types.js'
import {type Frame, frameName, ProtocolError, readJson} from './wire.js'

export const APP_PROTOCOL_VERSION = 1

export interface TerminalOpen {
  columns: number
  rows: number
  /** $TERM for the remote shell */
  term: string
}

export interface FileOpen {
  name: string
  /** `get`: resume from this byte (a range request: only the rest is sent) */
  offset?: number
  op: 'get' | 'stat'
}

export interface ScriptOpen {
  /** the program and its arguments, run without a shell */
  argv: string[]
  /** a command line for `/bin/sh -c`, when the agent allows any command */
  shell?: string
}

export interface OpenMessages {
  file: FileOpen
  script: ScriptOpen
  terminal: TerminalOpen
}

export interface FileInfo {
  /** ISO time of the file's last modification */
  modified: string
  name: string
  sha256: string
  size: number
}

/** READY of a file `get`: the file, and where its bytes start. */
export interface FileReady extends FileInfo {
  offset: number
}

export interface ProcessReady {
  /** what the agent runs: the shell, or the resolved program and its arguments */
  argv: string[]
}

export interface ExitMessage {
  /** the process's exit code; null when a signal ended it */
  code: null | number
  durationMs: number
  signal?: string
}

export interface ErrorMessage {
  code: string
  message: string
  suggestion?: string
}

/** OPEN as sent: the protocol version and the app's own fields. */
export const openPayload = <A extends AppName>(fields: OpenMessages[A]): Record<string, unknown> => ({v: APP_PROTOCOL_VERSION, ...fields})

const MAX_ARGS = 256
const MAX_ARG_BYTES = 4096

/** OPEN of APP, checked field by field. */
export function readOpen<A extends AppName>(app: A, frame: Frame): OpenMessages[A] {
  const value = readJson(frame)
  if (value.v !== APP_PROTOCOL_VERSION) throw new ProtocolError(`unsupported app protocol version ${JSON.stringify(value.v)} (this agent speaks ${APP_PROTOCOL_VERSION})`)
  const checks: {[K in AppName]: () => OpenMessages[K]} = {
    file() {
      if (value.op !== 'get' && value.op !== 'stat') throw new ProtocolError('OPEN of the file app needs op "get" or "stat"')
      if (!isShortString(value.name)) throw new ProtocolError('OPEN of the file app needs a file name')
      if (value.offset !== undefined && !isCount(value.offset)) throw new ProtocolError('a file offset is a byte count')
      return {name: value.name, offset: value.offset as number | undefined, op: value.op}
    },
    script() {
      const {argv, shell} = value
      if (!Array.isArray(argv) || argv.length === 0 || argv.length > MAX_ARGS || !argv.every((arg) => typeof arg === 'string' && Buffer.byteLength(arg) <= MAX_ARG_BYTES)) {
        throw new ProtocolError(`OPEN of the script app needs argv: 1–${MAX_ARGS} strings of at most ${MAX_ARG_BYTES} bytes`)
      }

      if (shell !== undefined && (typeof shell !== 'string' || Buffer.byteLength(shell) > MAX_ARG_BYTES)) throw new ProtocolError('a shell command line is a string')
      return {argv: argv as string[], shell: shell as string | undefined}
    },
    terminal() {
      const {columns, rows, term} = value
      if (!isSize(columns) || !isSize(rows)) throw new ProtocolError('OPEN of the terminal app needs columns and rows (1–10000)')
      if (typeof term !== 'string' || !/^[A-Za-z0-9._+-]{1,64}$/.test(term)) throw new ProtocolError('a terminal type is 1–64 letters, digits, ".", "_", "+" or "-"')
      return {columns, rows, term}
    },
  }
  return checks[app]() as OpenMessages[A]
}

export function readFileInfo(frame: Frame): FileReady {
  const value = readJson(frame)
  if (!isShortString(value.name) || !isCount(value.size) || typeof value.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(value.sha256)
    || typeof value.modified !== 'string' || (value.offset !== undefined && !isCount(value.offset))) {
    throw new ProtocolError(`${frameName(frame.type)} of the file app is malformed`)
  }

  return {modified: value.modified, name: value.name, offset: (value.offset as number | undefined) ?? 0, sha256: value.sha256, size: value.size}
}

export function readProcessReady(frame: Frame): ProcessReady {
  const {argv} = readJson(frame)
  if (!Array.isArray(argv) || !argv.every((arg) => typeof arg === 'string')) throw new ProtocolError('READY needs argv')
  return {argv: argv as string[]}
}

export function readExit(frame: Frame): ExitMessage {
  const {code, durationMs, signal} = readJson(frame)
  if (!(code === null || (Number.isInteger(code) && (code as number) >= 0 && (code as number) <= 255))) throw new ProtocolError('EXIT needs a code 0–255 or null')
  if (signal !== undefined && (typeof signal !== 'string' || signal.length > 16)) throw new ProtocolError('EXIT signal is a signal name')
  return {code: code as null | number, durationMs: isCount(durationMs) ? durationMs : 0, signal: signal as string | undefined}
}

export function readError(frame: Frame): ErrorMessage {
  const {code, message, suggestion} = readJson(frame)
  if (typeof code !== 'string' || typeof message !== 'string') throw new ProtocolError('ERROR needs code and message')
  return {code: code.slice(0, 64), message: message.slice(0, 2000), suggestion: typeof suggestion === 'string' ? suggestion.slice(0, 2000) : undefined}
}

const isShortString = (value: unknown): value is string => typeof value === 'string' && value.length > 0 && value.length <= 255
const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0
const isSize = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 10_000

// The error taxonomy. A ZtError is a user-fixable failure: stable code, plain message, a suggestion,
// an exit code, and no stack when rendered. Anything else that escapes is a bug and prints its stack.
// This module imports nothing heavy: every command loads it.

/** Exit codes, documented in the README. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  auth: 4,
  unreachable: 5,
  conflict: 6,
  unknownCommand: 127,
  interrupted: 130,
} as const
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

export interface ZtErrorOptions {
  cause?: unknown
  exit?: ExitCodeValue
  suggestion?: string
  /** Extra machine-readable fields for --json output and logs. */
  details?: Record<string, unknown>
}

const BRAND = Symbol.for('ztctl.error.ZtError')

export class ZtError extends Error {
  readonly code: string
  readonly exit: ExitCodeValue
  readonly suggestion?: string
  readonly details?: Record<string, unknown>
  readonly [BRAND] = true

  constructor(code: string, message: string, options: ZtErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : {cause: options.cause})
    this.name = 'ZtError'
    this.code = code
    this.exit = options.exit ?? ExitCode.failure
    this.suggestion = options.suggestion
    this.details = options.details
  }

  static is(value: unknown): value is ZtError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true
  }

  toJSON(): {code: string; details?: Record<string, unknown>; exit: ExitCodeValue; message: string; suggestion?: string} {
    return {code: this.code, details: this.details, exit: this.exit, message: this.message, suggestion: this.suggestion}
  }
}

/** Rebuild a ZtError from its JSON form (the controller's API error body). */
export function ztErrorFromJson(body: unknown, fallbackExit: ExitCodeValue = ExitCode.failure): ZtError | undefined {
  if (typeof body !== 'object' || body === null) return undefined
  const error = (body as {error?: unknown}).error
  if (typeof error !== 'object' || error === null) return undefined
  const {code, message, suggestion, exit} = error as Record<string, unknown>
  if (typeof code !== 'string' || typeof message !== 'string') return undefined
  return new ZtError(code, message, {
    exit: isExitCode(exit) ? exit : fallbackExit,
    suggestion: typeof suggestion === 'string' ? suggestion : undefined,
  })
}

function isExitCode(value: unknown): value is ExitCodeValue {
  return typeof value === 'number' && (Object.values(ExitCode) as number[]).includes(value)
}

/** Wrap a system error (ECONNREFUSED, ENOENT, ...) with words and a suggestion. */
export function describeSystemError(error: unknown): string {
  const err = error as NodeJS.ErrnoException
  switch (err?.code) {
    case 'ECONNREFUSED': {
      return 'connection refused'
    }

    case 'ETIMEDOUT': {
      return 'timed out'
    }

    case 'ENOTFOUND':
    case 'EAI_AGAIN': {
      return 'host name not found'
    }

    case 'EADDRINUSE': {
      return 'address already in use'
    }

    case 'EACCES': {
      return 'permission denied'
    }

    case 'ENOENT': {
      return 'no such file'
    }

    default: {
      return err?.message ?? String(error)
    }
  }
}

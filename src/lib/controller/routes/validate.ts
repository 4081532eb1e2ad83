// Request-body checks shared by the route files: every failure is a ZT_ERR_BAD_REQUEST in words.
import {ExitCode, ZtError} from '../../errors.js'

export function badRequest(message: string, suggestion?: string): ZtError {
  return new ZtError('ZT_ERR_BAD_REQUEST', message, {exit: ExitCode.usage, suggestion})
}

export function asObject(body: unknown, what = 'the request body'): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest(`${what} must be a JSON object`)
  return body as Record<string, unknown>
}

export function requireString(object: Record<string, unknown>, field: string, max = 64 * 1024): string {
  const value = object[field]
  if (typeof value !== 'string' || value.length === 0 || value.length > max) throw badRequest(`"${field}" must be a non-empty string`)
  return value
}

export function optionalStringList(object: Record<string, unknown>, field: string, pattern?: RegExp, max = 256): string[] {
  const value = object[field]
  if (value === undefined) return []
  if (!Array.isArray(value) || value.length > max || value.some((item) => typeof item !== 'string' || (pattern && !pattern.test(item)))) {
    throw badRequest(`"${field}" must be a list of strings${pattern ? ` matching ${pattern}` : ''}`)
  }

  return value as string[]
}

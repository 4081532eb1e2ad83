// The page's requests: same-origin only, changes as POST with the CSRF token the server put in the page.
import type {ErrorBody} from '../model.js'

const csrf = document.querySelector<HTMLMetaElement>('meta[name="ztctl-csrf"]')?.content ?? ''

export class ApiError extends Error {
  constructor(message: string, readonly suggestion?: string) {
    super(message)
  }
}

export async function post<T>(path: string, body: unknown): Promise<T> {
  const response = await fetch(path, {
    body: JSON.stringify(body),
    credentials: 'same-origin',
    headers: {'content-type': 'application/json', 'x-ztctl-csrf': csrf},
    method: 'POST',
  })
  const text = await response.text()
  if (response.ok) return JSON.parse(text) as T
  let error: ErrorBody['error'] | undefined
  try {
    error = (JSON.parse(text) as ErrorBody).error
  } catch {
    // a plain-text refusal (403) or a proxy's page
  }

  throw new ApiError(error?.message ?? (text.trim() || `HTTP ${response.status}`), error?.suggestion)
}

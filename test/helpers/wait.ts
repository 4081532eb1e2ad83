// Waiting on a condition in tests: poll, never sleep-and-hope. ZT_STEPS=1 prints each wait as it starts.

/** Poll CHECK until it returns something truthy (a throw counts as "not yet"), bounded by TIMEOUT_MS; the error names WHAT and the last failure. */
export async function waitUntil<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000, intervalMs = 100): Promise<T> {
  if (process.env.ZT_STEPS) process.stderr.write(`[wait] ${what}\n`)
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const value = await check()
      if (value) return value
    } catch (error) {
      last = error
    }

    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }

  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`)
}

// One async job that must never overlap itself (a reconcile, a re-chain): a call while it runs asks for
// exactly one more run after it, and calls meanwhile fold into that one, so a burst of changes costs two runs.

export interface Serialized {
  /** Run now, or once more after the run in flight; resolves when the runs asked for so far are done (never rejects). */
  (): Promise<void>
  /** Drop the run asked for; the one in flight finishes. */
  cancel(): void
  /** Drop the run asked for and wait for the one in flight. */
  idle(): Promise<void>
}

/** FN never twice at once; a rejection goes to ONERROR (default: dropped) and the next call runs again. */
export function serialized(fn: () => Promise<void>, onError: (error: unknown) => void = () => {}): Serialized {
  let busy = false
  let again = false
  let current: Promise<void> = Promise.resolve()
  const loop = async (): Promise<void> => {
    try {
      do {
        again = false
        try {
          await fn()
        } catch (error) {
          onError(error)
        }
      } while (again)
    } finally {
      // cleared in the same turn as the last check of `again`: a call from now on starts a new loop
      busy = false
    }
  }

  const run = (): Promise<void> => {
    if (busy) {
      again = true
      return current
    }

    busy = true
    current = loop()
    return current
  }

  const cancel = (): void => {
    again = false
  }

  return Object.assign(run, {
    cancel,
    async idle() {
      cancel()
      await current
    },
  })
}

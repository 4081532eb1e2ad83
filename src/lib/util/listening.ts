// Starting a server or socket that reports failure as an 'error' event: listen(), bind().

/**
 * Resolves once START's callback runs (listening, bound); an 'error' before that rejects. The one-shot
 * error listener is gone either way, so a later error reaches the caller's own listener (or crashes
 * loudly) instead of a settled promise.
 */
export function listening(emitter: NodeJS.EventEmitter, start: (done: () => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    emitter.once('error', reject)
    start(() => {
      emitter.off('error', reject)
      resolve()
    })
  })
}

// serialized() (src/lib/util/serialized.ts), the one-at-a-time runner of the CNI agent's re-chain and the
// controller's workload reconcile, on real timers: calls while a run is in flight fold into exactly one
// more run, a rejection neither escapes nor wedges it, cancel()/idle() drop the run asked for.
import assert from 'node:assert/strict'
import {test} from 'node:test'
import {setTimeout as sleep} from 'node:timers/promises'

import {serialized} from '../../src/lib/util/serialized.js'

/** A job that takes MS of real time and counts its runs and how many were ever in flight at once. */
function job(ms: number, fail?: (run: number) => boolean) {
  const stats = {inFlight: 0, maxInFlight: 0, runs: 0}
  const fn = async (): Promise<void> => {
    stats.runs++
    stats.inFlight++
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight)
    try {
      await sleep(ms)
      if (fail?.(stats.runs)) throw new Error(`run ${stats.runs} failed`)
    } finally {
      stats.inFlight--
    }
  }

  return {fn, stats}
}

test('calls while a run is in flight fold into one more run, and every caller waits for it', async () => {
  const {fn, stats} = job(30)
  const run = serialized(fn)
  const first = run()
  await sleep(5)
  const later = [run(), run(), run()]
  assert.equal(stats.runs, 1, 'the calls in flight wait for the run')
  await Promise.all([first, ...later])
  assert.deepEqual(stats, {inFlight: 0, maxInFlight: 1, runs: 2})

  await run()
  assert.equal(stats.runs, 3, 'a call after the runs are done starts a new one')
})

test('a call made while the last run ends is not lost', async () => {
  const {fn, stats} = job(10)
  const run = serialized(fn)
  // asked from inside the run's own continuation: the run in flight must not swallow it
  const first = run().then(() => run())
  await first
  assert.equal(stats.runs, 2)
  // asked from inside the job, after its await: one more run
  let asked = false
  const inner = serialized(async () => {
    await fn()
    if (!asked) {
      asked = true
      void inner()
    }
  })
  await inner()
  assert.equal(stats.runs, 4)
  assert.equal(stats.maxInFlight, 1)
})

test('a rejection goes to onError, the promise still resolves and the next call runs', async () => {
  const errors: string[] = []
  const {fn, stats} = job(10, (run) => run === 1)
  const run = serialized(fn, (error) => errors.push((error as Error).message))
  await run()
  assert.deepEqual(errors, ['run 1 failed'])
  await run()
  assert.equal(stats.runs, 2)
  assert.deepEqual(errors, ['run 1 failed'])

  // a job that throws before its first await does not wedge it either
  let calls = 0
  const throwing = serialized((() => {
    calls++
    throw new Error('at once')
  }) as () => Promise<void>, () => {})
  await throwing()
  await throwing()
  assert.equal(calls, 2)
})

test('cancel() drops the run asked for; the one in flight finishes', async () => {
  const {fn, stats} = job(30)
  const run = serialized(fn)
  const first = run()
  await sleep(5)
  const second = run()
  run.cancel()
  await Promise.all([first, second])
  assert.equal(stats.runs, 1)
  await sleep(40)
  assert.equal(stats.runs, 1, 'no run after cancel')

  await run()
  assert.equal(stats.runs, 2, 'cancel does not stop later calls')
})

test('idle() drops the run asked for and waits for the one in flight', async () => {
  const {fn, stats} = job(30)
  const run = serialized(fn)
  void run()
  await sleep(5)
  void run()
  await run.idle()
  assert.deepEqual(stats, {inFlight: 0, maxInFlight: 1, runs: 1})
  await run.idle()
  assert.equal(stats.runs, 1, 'idle with nothing in flight returns at once and runs nothing')
})

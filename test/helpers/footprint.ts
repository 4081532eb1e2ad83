// What a process we started holds, from Linux /proc: open file descriptors and resident memory, sampled
// while an attack runs so a test can assert the peak and the recovery.
import {readdir, readFile} from 'node:fs/promises'

export interface Footprint {
  fds: number
  rssMb: number
}

export async function footprint(pid: number): Promise<Footprint> {
  const fds = (await readdir(`/proc/${pid}/fd`)).length
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN)
  return {fds, rssMb: Math.round(rssKb / 102.4) / 10}
}

export interface FootprintSampler {
  /** stop sampling; the peak of each figure over the samples */
  stop(): Promise<Footprint & {samples: number}>
}

export function sampleFootprint(pid: number, intervalMs = 100): FootprintSampler {
  const peak: Footprint = {fds: 0, rssMb: 0}
  let samples = 0
  let running = true
  const loop = (async () => {
    while (running) {
      const now = await footprint(pid).catch(() => undefined)
      if (now) {
        samples++
        peak.fds = Math.max(peak.fds, now.fds)
        peak.rssMb = Math.max(peak.rssMb, now.rssMb)
      }

      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
  })()
  return {
    async stop() {
      running = false
      await loop
      return {...peak, samples}
    },
  }
}

/** Poll PID's footprint until OK holds (recovery after an attack); the last one, or an error after timeoutMs. */
export async function waitForFootprint(pid: number, ok: (now: Footprint) => boolean, timeoutMs: number): Promise<Footprint> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const now = await footprint(pid)
    if (ok(now)) return now
    if (Date.now() > deadline) throw new Error(`process ${pid} still holds ${JSON.stringify(now)} after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

export interface Probe {
  /** stop after the attempt in flight; how many attempts succeeded, and why the others failed */
  stop(): Promise<{answered: number; failures: string[]}>
}

/**
 * Run ATTEMPT again and again, INTERVAL apart, until stopped: a legitimate client while an attack runs.
 * ATTEMPT resolves undefined when served, else with why it was not.
 */
export function probeLoop(attempt: () => Promise<string | undefined>, intervalMs = 200): Probe {
  const failures: string[] = []
  let answered = 0
  let running = true
  const loop = (async () => {
    while (running) {
      const failure = await attempt()
      if (failure === undefined) answered++
      else failures.push(failure)
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
  })()
  return {
    async stop() {
      running = false
      await loop
      return {answered, failures}
    },
  }
}

// The idle agent's memory trim. Once the agent has carried no connection for `idleMs`, it runs once:
// a full V8 garbage collection, glibc malloc_trim (free arena memory back to the kernel), and
// MADV_DONTNEED on the read-only, file-backed mappings of the Node binary that hold no private page
// (its code and read-only data: the pages stay in the page cache and fault back in when used). It
// rearms when the next connection closes, so it runs at most once per idle period and never more often
// than once per `idleMs`. Linux only; elsewhere (or without the addon) the steps that cannot run are skipped.
import {readFileSync, realpathSync} from 'node:fs'
import v8 from 'node:v8'
import vm from 'node:vm'

import {discardFilePages, mallocTrim} from '../../netns/native.js'
import type {Logger} from '../observe/log.js'

/** Resident memory of a process, from /proc/PID/status (KiB). */
export interface MemoryStatus {
  anonKiB: number
  fileKiB: number
  rssKiB: number
}

export function readMemoryStatus(pid: number | 'self' = 'self'): MemoryStatus | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return undefined
  }

  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN)
  return {anonKiB: field('RssAnon'), fileKiB: field('RssFile'), rssKiB: field('VmRSS')}
}

/** One mapping of /proc/PID/smaps, with the fields the trim looks at. */
export interface SmapsMapping {
  anonymousKiB: number
  end: bigint
  path: string
  perms: string
  rssKiB: number
  start: bigint
  swapKiB: number
}

const MAPPING_LINE = /^([\da-f]+)-([\da-f]+) (\S{4}) [\da-f]+ [\da-f]+:[\da-f]+ (\d+)\s*(.*)$/

export function parseSmaps(text: string): SmapsMapping[] {
  const mappings: SmapsMapping[] = []
  let current: SmapsMapping | undefined
  for (const line of text.split('\n')) {
    const header = MAPPING_LINE.exec(line)
    if (header) {
      current = {anonymousKiB: 0, end: BigInt(`0x${header[2]}`), path: header[5], perms: header[3], rssKiB: 0, start: BigInt(`0x${header[1]}`), swapKiB: 0}
      mappings.push(current)
      continue
    }

    const field = /^(Rss|Anonymous|Swap):\s+(\d+) kB/.exec(line)
    if (field && current) {
      const kib = Number(field[2])
      if (field[1] === 'Rss') current.rssKiB = kib
      else if (field[1] === 'Anonymous') current.anonymousKiB = kib
      else current.swapKiB = kib
    }
  }

  return mappings
}

/**
 * The mappings whose pages can be dropped without losing anything: mapped from `binaryPath`, read-only
 * (r--p, r-xp), and without anonymous (copy-on-write) pages, resident or swapped. The addon checks the
 * same again before it acts.
 */
export function discardableMappings(mappings: readonly SmapsMapping[], binaryPath: string): SmapsMapping[] {
  return mappings.filter((mapping) =>
    mapping.path === binaryPath && (mapping.perms === 'r--p' || mapping.perms === 'r-xp') && mapping.anonymousKiB === 0 && mapping.swapKiB === 0 && mapping.end > mapping.start)
}

type GcFunction = (options?: {execution: 'sync'; flavor: 'last-resort'; type: 'major'}) => void
let collect: GcFunction | undefined

/**
 * A full, synchronous V8 garbage collection of the "last resort" flavour: V8's
 * CollectAllAvailableGarbage, which also shrinks the young generation and releases its pooled pages
 * at once (a plain gc() leaves that to the memory reducer, seconds later). `gc` is exposed once, in a
 * throwaway context, when node was started without --expose-gc.
 */
export function fullGc(): void {
  if (collect === undefined) {
    const global = (globalThis as {gc?: GcFunction}).gc
    if (typeof global === 'function') {
      collect = global
    } else {
      v8.setFlagsFromString('--expose-gc')
      collect = vm.runInNewContext('gc') as GcFunction
      v8.setFlagsFromString('--no-expose-gc')
    }
  }

  collect({execution: 'sync', flavor: 'last-resort', type: 'major'})
}

export interface TrimReport {
  after?: MemoryStatus
  before?: MemoryStatus
  /** bytes of binary mappings whose pages were dropped */
  discardedBytes: number
  /** steps that failed or were refused (the others still ran) */
  errors: string[]
  /** false when malloc_trim released nothing (or could not run) */
  mallocTrimmed: boolean
  /** mappings whose pages were dropped */
  mappings: number
  /** duration of each step that ran; the event loop runs between steps */
  ms: {discard?: number; gc?: number; mallocTrim?: number}
  /** the step at which `proceed` said stop (a connection arrived), if it did */
  stoppedBefore?: 'discard' | 'gc' | 'mallocTrim'
}

export interface TrimOptions {
  /** the Node binary's path as /proc/self/smaps shows it (default: the real path of process.execPath) */
  binaryPath?: string
  /** asked before each step: false stops the trim there (default: always go on) */
  proceed?: () => boolean
}

/**
 * Run the trim once, now: full GC, malloc_trim, then drop the Node binary's clean pages, yielding to the
 * event loop between the steps. Never throws: a step that cannot run is reported in `errors`.
 */
export async function trimMemory(options: TrimOptions = {}): Promise<TrimReport> {
  const {binaryPath = realBinaryPath(), proceed = () => true} = options
  const report: TrimReport = {before: readMemoryStatus(), discardedBytes: 0, errors: [], mallocTrimmed: false, mappings: 0, ms: {}}
  const steps: [NonNullable<TrimReport['stoppedBefore']>, () => void][] = [
    ['gc', fullGc],
    ['mallocTrim', () => {
      report.mallocTrimmed = mallocTrim()
    }],
    ['discard', () => discardBinaryPages(binaryPath, report)],
  ]
  for (const [name, run] of steps) {
    if (!proceed()) {
      report.stoppedBefore = name
      break
    }

    const started = performance.now()
    try {
      run()
    } catch (error) {
      report.errors.push(`${name}: ${(error as Error).message}`)
    }

    report.ms[name] = Math.round((performance.now() - started) * 10) / 10
    await new Promise((resolve) => {
      setImmediate(resolve)
    })
  }

  report.after = readMemoryStatus()
  return report
}

function discardBinaryPages(binaryPath: string, report: TrimReport): void {
  const mappings = discardableMappings(parseSmaps(readFileSync('/proc/self/smaps', 'utf8')), binaryPath)
  for (const mapping of mappings) {
    try {
      discardFilePages(mapping.start, mapping.end - mapping.start)
      report.mappings++
      report.discardedBytes += Number(mapping.end - mapping.start)
    } catch (error) {
      // The addon is missing: every other mapping would fail the same way.
      if ((error as {code?: string}).code === 'ZT_ERR_NATIVE_MISSING') throw error
      report.errors.push(`discard: ${(error as Error).message}`)
    }
  }
}

function realBinaryPath(): string {
  try {
    return realpathSync(process.execPath)
  } catch {
    return process.execPath
  }
}

/** What the trimmer watches: the connection registry (it emits 'empty' when the last connection closes). */
export interface IdleSource {
  readonly size: number
  off(event: 'empty', listener: () => void): unknown
  on(event: 'empty', listener: () => void): unknown
}

export interface IdleTrimOptions {
  /** stop for good once this settles (the agent's `closed`) */
  closed?: Promise<unknown>
  idleMs: number
  logger?: Logger
  /** called after each trim (tests) */
  onTrim?: (report: TrimReport) => void
  source: IdleSource
}

export interface IdleTrimmer {
  stop(): void
}

/** Trim once the source has been empty for `idleMs` (counting from now), then again after each later connection. */
export function startIdleTrim(options: IdleTrimOptions): IdleTrimmer {
  const {idleMs, logger, source} = options
  const binaryPath = realBinaryPath()
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  const fire = async (): Promise<void> => {
    timer = undefined
    // A connection opened during the wait and is still open: its close emits 'empty' and rearms.
    if (stopped || source.size > 0) return
    // A connection arriving mid-trim stops it: no more pages dropped under live traffic.
    const report = await trimMemory({binaryPath, proceed: () => !stopped && source.size === 0})
    const kib = (status?: MemoryStatus) => status && {anonKiB: status.anonKiB, fileKiB: status.fileKiB}
    logger?.debug({after: kib(report.after), before: kib(report.before), component: 'memory', discardedBytes: report.discardedBytes,
      errors: report.errors.length > 0 ? report.errors : undefined, mallocTrimmed: report.mallocTrimmed, mappings: report.mappings, ms: report.ms,
      stoppedBefore: report.stoppedBefore}, 'idle memory trim')
    options.onTrim?.(report)
  }

  const schedule = (): void => {
    if (stopped) return
    if (timer) clearTimeout(timer)
    timer = setTimeout(() => void fire(), idleMs)
    timer.unref()
  }

  const stop = (): void => {
    stopped = true
    if (timer) clearTimeout(timer)
    timer = undefined
    source.off('empty', schedule)
  }

  source.on('empty', schedule)
  schedule()
  void options.closed?.then(stop, stop)
  return {stop}
}

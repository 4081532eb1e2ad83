// The process metrics Prometheus users expect next to the traffic ones (prom-client's names): resident
// memory, CPU seconds, open and maximum file descriptors, start time, heap, and the event loop's lag
// (mean and p99 of the delays since the previous scrape, from Node's monitorEventLoopDelay).
import {readdirSync, readFileSync} from 'node:fs'
import {monitorEventLoopDelay} from 'node:perf_hooks'

const START_SECONDS = Math.round((Date.now() - process.uptime() * 1000) / 1000)

/** /proc/self facts (Linux); undefined where there is no /proc. */
function openFds(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length - 1 // the directory handle readdir itself holds
  } catch {
    return undefined
  }
}

function maxFds(): number | undefined {
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    return line ? Number(line[1]) : undefined
  } catch {
    return undefined
  }
}

export class ProcessMetrics {
  private readonly loop = monitorEventLoopDelay({resolution: 10})

  constructor() {
    this.loop.enable()
  }

  render(): string {
    const cpu = process.cpuUsage()
    const heap = process.memoryUsage()
    // Lag since the last scrape; with no sample yet, 0.
    const lagMean = Number.isFinite(this.loop.mean) ? this.loop.mean / 1e9 : 0
    const lagP99 = this.loop.count > 0 ? this.loop.percentile(99) / 1e9 : 0
    this.loop.reset()
    const gauges: [string, string, 'counter' | 'gauge', number | undefined][] = [
      ['process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', 'counter', cpu.user / 1e6],
      ['process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', 'counter', cpu.system / 1e6],
      ['process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', 'counter', (cpu.user + cpu.system) / 1e6],
      ['process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', 'gauge', START_SECONDS],
      ['process_resident_memory_bytes', 'Resident memory size in bytes.', 'gauge', process.memoryUsage.rss()],
      ['process_open_fds', 'Number of open file descriptors.', 'gauge', openFds()],
      ['process_max_fds', 'Maximum number of open file descriptors.', 'gauge', maxFds()],
      ['nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', 'gauge', heap.heapUsed],
      ['nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', 'gauge', heap.heapTotal],
      ['nodejs_eventloop_lag_seconds', 'Mean event loop delay since the previous scrape, in seconds.', 'gauge', lagMean],
      ['nodejs_eventloop_lag_p99_seconds', '99th percentile of the event loop delay since the previous scrape, in seconds.', 'gauge', lagP99],
    ]
    return gauges
      .filter(([, , , value]) => value !== undefined)
      .flatMap(([name, help, type, value]) => [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`])
      .join('\n') + '\n'
  }

}

let shared: ProcessMetrics | undefined

/** One per process (in-process agents in tests share it), created on first scrape. */
export function processMetrics(): ProcessMetrics {
  shared ??= new ProcessMetrics()
  return shared
}

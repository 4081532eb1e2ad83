// A one-line progress bar on a terminal (a TTY's stderr), redrawn at most ten times a second:
//   app.tar.gz  [##########----------]  52%  26.0 MB / 50.0 MB  112.4 MB/s  0:00 left
import type {WriteStream} from 'node:tty'

const REDRAW_MS = 100
const BAR_WIDTH = 24

export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`
  const units = ['kB', 'MB', 'GB', 'TB']
  let value = bytes
  let unit = -1
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000
    unit++
  }

  return `${value.toFixed(1)} ${units[unit]}`
}

const formatClock = (seconds: number): string => `${Math.floor(seconds / 60)}:${String(Math.floor(seconds % 60)).padStart(2, '0')}`

export interface ProgressBar {
  /** erase the bar (idempotent) */
  done(): void
  update(progress: {received: number; size: number}): void
}

export function progressBar(stream: WriteStream, label: string): ProgressBar {
  let last = 0
  let shown = false
  let first: {at: number; received: number} | undefined
  return {
    done() {
      if (shown) stream.write('\r\u001B[2K')
      shown = false
    },
    update({received, size}) {
      const now = Date.now()
      first ??= {at: now, received}
      if (now - last < REDRAW_MS && received < size) return
      last = now
      const fraction = size === 0 ? 1 : received / size
      const filled = Math.round(fraction * BAR_WIDTH)
      const seconds = (now - first.at) / 1000
      const rate = seconds > 0 ? (received - first.received) / seconds : 0
      const left = rate > 0 ? `  ${formatClock((size - received) / rate)} left` : ''
      const line = `${label}  [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]  ${String(Math.floor(fraction * 100)).padStart(3)}%  ${formatBytes(received)} / ${formatBytes(size)}  ${formatBytes(rate)}/s${left}`
      stream.write(`\r\u001B[2K${line.slice(0, Math.max(20, (stream.columns || 80) - 1))}`)
      shown = true
    },
  }
}

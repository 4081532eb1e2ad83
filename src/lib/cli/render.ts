// Human and machine renderings of command results. Tables follow istioctl/ziti: upper-case headers,
// no borders, two spaces between columns, so that `awk`/`grep` work on them.
import Table from 'cli-table3'

// parseDuration lives with the other helpers that need no CLI; commands keep importing it from here.
export {parseDuration} from '../util/duration.js'

export type OutputFormat = 'json' | 'table' | 'yaml'

export interface Column<Row> {
  header: string
  value: (row: Row) => boolean | null | number | string | undefined
}

export function renderTable<Row>(rows: readonly Row[], columns: readonly Column<Row>[]): string {
  const table = new Table({
    chars: {
      bottom: '', 'bottom-left': '', 'bottom-mid': '', 'bottom-right': '', left: '', 'left-mid': '',
      mid: '', 'mid-mid': '', middle: '  ', right: '', 'right-mid': '', top: '', 'top-left': '',
      'top-mid': '', 'top-right': '',
    },
    head: columns.map((column) => column.header),
    style: {border: [], compact: true, head: [], 'padding-left': 0, 'padding-right': 0},
  })
  for (const row of rows) {
    table.push(columns.map((column) => formatCell(column.value(row))))
  }

  return table
    .toString()
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')
}

function formatCell(value: boolean | null | number | string | undefined): string {
  if (value === undefined || value === null || value === '') return '-'
  return String(value)
}

export async function renderData(data: unknown, format: Exclude<OutputFormat, 'table'>): Promise<string> {
  if (format === 'json') return JSON.stringify(data, null, 2)
  const {stringify} = await import('yaml')
  return stringify(data).trimEnd()
}

export function formatAge(fromMs: number, nowMs = Date.now()): string {
  const seconds = Math.max(0, Math.round((nowMs - fromMs) / 1000))
  if (seconds < 120) return `${seconds}s`
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h`
  return `${Math.round(seconds / 86_400)}d`
}

/** --dry-run's human output: the request that was not sent. */
export function dryRunText(request: {body?: unknown; method: string; path: string}): string {
  const body = request.body === undefined ? '' : `\n${JSON.stringify(request.body, null, 2)}`
  return `dry run, nothing changed; would send ${request.method} ${decodeURIComponent(request.path)}${body}`
}

// Building DOM from data: text is always text (textContent), never HTML.
type Child = Node | string | false | null | undefined
type Props = {class?: string; data?: Record<string, string>; title?: string} & Record<string, unknown>

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag)
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === false) continue
    if (key === 'class') element.className = String(value)
    else if (key === 'data') for (const [name, text] of Object.entries(value as Record<string, string>)) element.dataset[name] = text
    else if (key.startsWith('on') && typeof value === 'function') element.addEventListener(key.slice(2), value as EventListener)
    else if (value === true) element.setAttribute(key, '')
    else element.setAttribute(key, String(value))
  }

  for (const child of children) if (child !== false && child !== null && child !== undefined) element.append(child)
  return element
}

export const $ = <T extends HTMLElement = HTMLElement>(selector: string): T => document.querySelector<T>(selector)!

/** Replace a table body's rows; EMPTY (a sentence) when there are none. */
export function fillTable(table: HTMLTableElement, rows: HTMLTableRowElement[], empty: string): void {
  const body = table.tBodies[0]
  const columns = table.tHead?.rows[0]?.cells.length ?? 1
  body.replaceChildren(...(rows.length > 0 ? rows : [h('tr', {}, h('td', {class: 'empty', colspan: columns}, empty))]))
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${Math.round(bytes)} B`
  const units = ['kB', 'MB', 'GB', 'TB']
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }

  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`
}

export const formatRate = (bytesPerSecond: number): string => (bytesPerSecond > 0 ? `${formatBytes(bytesPerSecond)}/s` : '–')

/** "12s", "5m", "3h", "2d" between two instants. */
export function formatSpan(ms: number): string {
  const seconds = Math.max(0, Math.round(Math.abs(ms) / 1000))
  if (seconds < 120) return `${seconds}s`
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h`
  return `${Math.round(seconds / 86_400)}d`
}

export const since = (iso: string | undefined, now = Date.now()): string => (iso ? `${formatSpan(now - Date.parse(iso))} ago` : '–')

export function until(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '–'
  const ms = Date.parse(iso) - now
  return ms > 0 ? `in ${formatSpan(ms)}` : `expired ${formatSpan(ms)} ago`
}

/** Comma- or space-separated values of a form field. */
export const values = (text: FormDataEntryValue | null): string[] => String(text ?? '').split(/[\s,]+/).filter(Boolean)

// plot.js - the fan-out curves of bench/control/run.js as one PNG: change → last ack (p99) against N per
// W, the controller's peak RSS against W per N, and bytes per snapshot / delta against W. Drawn as SVG
// and rasterised by Debian's Chromium through playwright-core (both already used by the dashboard test).
//   node bench/control/plot.js OUT/control.jsonl [FILE.png]
import {readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'

const CHROMIUM = '/usr/bin/chromium'
const WIDTH = 420
const HEIGHT = 300
const MARGIN = {bottom: 44, left: 62, right: 14, top: 30}
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e']

const escape = (text) => String(text).replaceAll('&', '&amp;').replaceAll('<', '&lt;')
const short = (value) => (value >= 1e6 ? `${value / 1e6}M` : value >= 1e3 ? `${value / 1e3}k` : String(value))

/** A log-log line chart: series = [{name, points: [[x, y]]}]. */
function chart({series, title, xLabel, yLabel}) {
  const points = series.flatMap((line) => line.points).filter(([x, y]) => x > 0 && y > 0)
  if (points.length === 0) return `<svg width="${WIDTH}" height="${HEIGHT}"></svg>`
  const decades = (values) => [Math.floor(Math.log10(Math.min(...values))), Math.ceil(Math.log10(Math.max(...values)))]
  const [x0, x1] = decades(points.map(([x]) => x))
  let [y0, y1] = decades(points.map(([, y]) => y))
  if (y0 === y1) y1++
  const px = (x) => MARGIN.left + ((Math.log10(x) - x0) / Math.max(1, x1 - x0)) * (WIDTH - MARGIN.left - MARGIN.right)
  const py = (y) => HEIGHT - MARGIN.bottom - ((Math.log10(y) - y0) / (y1 - y0)) * (HEIGHT - MARGIN.top - MARGIN.bottom)
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="11">`,
    `<text x="${WIDTH / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${escape(title)}</text>`]
  for (let d = x0; d <= x1; d++) {
    parts.push(`<line x1="${px(10 ** d)}" x2="${px(10 ** d)}" y1="${MARGIN.top}" y2="${HEIGHT - MARGIN.bottom}" stroke="#ddd"/>`,
      `<text x="${px(10 ** d)}" y="${HEIGHT - MARGIN.bottom + 14}" text-anchor="middle">${short(10 ** d)}</text>`)
  }

  for (let d = y0; d <= y1; d++) {
    parts.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${py(10 ** d)}" y2="${py(10 ** d)}" stroke="#ddd"/>`,
      `<text x="${MARGIN.left - 6}" y="${py(10 ** d) + 4}" text-anchor="end">${short(10 ** d)}</text>`)
  }

  parts.push(`<text x="${WIDTH / 2}" y="${HEIGHT - 8}" text-anchor="middle">${escape(xLabel)}</text>`,
    `<text transform="translate(14 ${HEIGHT / 2}) rotate(-90)" text-anchor="middle">${escape(yLabel)}</text>`)
  for (const [index, line] of series.entries()) {
    const colour = COLOURS[index % COLOURS.length]
    const drawn = line.points.filter(([x, y]) => x > 0 && y > 0)
    parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" ${line.dashed ? 'stroke-dasharray="5 3"' : ''} points="${drawn.map(([x, y]) => `${px(x)},${py(y)}`).join(' ')}"/>`)
    for (const [x, y] of drawn) parts.push(`<circle cx="${px(x)}" cy="${py(y)}" r="3" fill="${colour}"/>`)
    parts.push(`<text x="${MARGIN.left + 8}" y="${MARGIN.top + 12 + 13 * index}" fill="${colour}">${escape(line.name)}</text>`)
  }

  parts.push('</svg>')
  return parts.join('')
}

function charts(results) {
  const ws = [...new Set(results.map((row) => row.w))].sort((a, b) => a - b)
  const ns = [...new Set(results.map((row) => row.n))].sort((a, b) => a - b)
  const at = (w, n) => results.find((row) => row.w === w && row.n === n)
  const goalLine = (ys) => ({dashed: true, name: 'goal', points: ys})
  return [
    chart({
      series: [...ws.map((w) => ({name: `W = ${short(w)}`, points: ns.map((n) => [n, at(w, n)?.change.recordedP99Ms])})), goalLine(ns.map((n) => [n, 1000]))],
      title: 'one change → every ack recorded (p99)', xLabel: 'N agents', yLabel: 'ms',
    }),
    chart({
      series: [...ns.map((n) => ({name: `N = ${short(n)}`, points: ws.map((w) => {
        const row = at(w, n)
        return [w, row && (Math.max(row.subscribe.peakRssKiB, row.change.peakRssKiB, row.restart.peakRssKiB) * 1024) / 1e6]
      })})), goalLine(ws.map((w) => [w, 1000]))],
      title: 'controller peak RSS', xLabel: 'W workloads', yLabel: 'MB',
    }),
    chart({
      series: [
        {name: 'bytes per snapshot', points: ws.map((w) => [w, at(w, ns[0])?.subscribe.bytesPerSnapshot])},
        {name: 'bytes per delta', points: ws.map((w) => [w, at(w, ns[0])?.change.deltaBytes])},
      ],
      title: 'bytes on the stream', xLabel: 'W workloads', yLabel: 'bytes',
    }),
  ]
}

/** Write FILE (PNG); resolves with its path. */
export async function renderPlot(results, file) {
  const {chromium} = await import('playwright-core')
  const browser = await chromium.launch({executablePath: CHROMIUM, headless: true})
  try {
    const page = await browser.newPage({deviceScaleFactor: 2, viewport: {height: HEIGHT, width: WIDTH * 3}})
    await page.setContent(`<html><body style="margin:0;background:#fff;display:flex">${charts(results).join('')}</body></html>`)
    await page.screenshot({path: file})
  } finally {
    await browser.close()
  }

  return file
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const results = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line))
  process.stdout.write(`${await renderPlot(results, process.argv[3] ?? process.argv[2].replace(/\.jsonl$/, '.png'))}\n`)
}

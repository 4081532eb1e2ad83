// Builds the dashboard's page into dist/dashboard/ (npm run build): one ES module bundle with cytoscape and
// its dagre layout (esbuild, minified), the stylesheet, index.html and the icon. No CDN: the page loads
// only these files, from the CLI process that serves it.
import {copyFile, mkdir, rm, stat} from 'node:fs/promises'
import path from 'node:path'
import {performance} from 'node:perf_hooks'
import process from 'node:process'
import {fileURLToPath} from 'node:url'

import {build} from 'esbuild'

const here = path.dirname(fileURLToPath(import.meta.url))
const out = path.resolve(here, '../../../../dist/dashboard')
const started = performance.now()
await rm(out, {force: true, recursive: true})
await mkdir(out, {recursive: true})
await build({
  bundle: true,
  entryPoints: {app: path.join(here, 'main.ts'), 'app-style': path.join(here, 'styles.css')},
  format: 'esm',
  legalComments: 'linked',
  logLevel: 'warning',
  minify: true,
  outdir: out,
  target: ['chrome111', 'firefox113', 'safari16.4'],
})
await copyFile(path.join(out, 'app-style.css'), path.join(out, 'app.css'))
await rm(path.join(out, 'app-style.css'))
for (const file of ['index.html', 'favicon.svg']) await copyFile(path.join(here, file), path.join(out, file))
const size = async (file) => (await stat(path.join(out, file))).size
const kb = (bytes) => `${(bytes / 1024).toFixed(0)} KiB`
process.stderr.write(`dashboard: dist/dashboard/ app.js ${kb(await size('app.js'))}, app.css ${kb(await size('app.css'))} in ${Math.round(performance.now() - started)} ms\n`)

// The shape of src/'s imports: no file imports itself back through others (not even for a type), and
// the proxy module's folders import one direction only (README "Layout"): daemon → paths → hbone →
// state | observe → address.ts. A proxy file may import its own folder or a folder below it, never
// above or beside (state and observe stay independent of each other).
import assert from 'node:assert/strict'
import {readdir, readFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'
import {fileURLToPath} from 'node:url'

const srcDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src')
const proxyDir = path.join(srcDir, 'lib/proxy')
/** Higher imports lower; '' is the module's root (address.ts). */
const RANK: Record<string, number> = {daemon: 3, paths: 2, hbone: 1, state: 0, observe: 0, '': -1}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, {withFileTypes: true})
  const nested = await Promise.all(entries.map(async (entry) => {
    const file = path.join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(file)
    return entry.name.endsWith('.ts') ? [file] : []
  }))
  return nested.flat()
}

/** Relative module specifiers of static imports/exports, dynamic import() and import() types. */
function relativeImports(text: string): string[] {
  return [...text.matchAll(/(?:from\s+|import\(\s*)'(\.{1,2}\/[^']+)'/g)].map((match) => match[1])
}

const folderOf = (file: string): string => path.dirname(path.relative(proxyDir, file)).replace(/^\.$/, '')

test('proxy folders import one direction: daemon → paths → hbone → state | observe → address.ts', async () => {
  const files = await sourceFiles(proxyDir)
  assert.ok(files.length > 20, `found only ${files.length} files under ${proxyDir}`)
  const folders = new Set(files.map(folderOf))
  assert.deepEqual([...folders].filter((folder) => !(folder in RANK)), [], 'a folder without a rank: add it to RANK')
  const violations: string[] = []
  for (const file of files) {
    const from = folderOf(file)
    for (const specifier of relativeImports(await readFile(file, 'utf8'))) {
      const target = path.resolve(path.dirname(file), specifier)
      if (!target.startsWith(proxyDir + path.sep)) continue
      const to = folderOf(target)
      if (to !== from && !(RANK[to] < RANK[from])) violations.push(`${path.relative(proxyDir, file)} imports ${specifier}`)
    }
  }

  assert.deepEqual(violations, [])
})

/** One import cycle in GRAPH (file → the files it imports), as the files round it, or undefined. */
function findCycle(graph: Map<string, string[]>): string[] | undefined {
  const finished = new Set<string>()
  const stack: string[] = []
  const visit = (file: string): string[] | undefined => {
    const onStack = stack.indexOf(file)
    if (onStack !== -1) return [...stack.slice(onStack), file]
    if (finished.has(file)) return undefined
    stack.push(file)
    for (const next of graph.get(file) ?? []) {
      const cycle = visit(next)
      if (cycle) return cycle
    }

    stack.pop()
    finished.add(file)
    return undefined
  }

  for (const file of graph.keys()) {
    const cycle = visit(file)
    if (cycle) return cycle
  }

  return undefined
}

test('src/ has no import cycle, type-only and lazy imports included', async () => {
  const files = await sourceFiles(srcDir)
  assert.ok(files.length > 100, `found only ${files.length} files under ${srcDir}`)
  const known = new Set(files)
  const graph = new Map<string, string[]>()
  for (const file of files) {
    const targets = relativeImports(await readFile(file, 'utf8')).map((specifier) => path.resolve(path.dirname(file), specifier).replace(/\.js$/, '.ts'))
    graph.set(file, targets.filter((target) => known.has(target)))
  }

  assert.ok([...graph.values()].some((targets) => targets.length > 0), 'no import was recognised')
  assert.deepEqual(findCycle(graph)?.map((file) => path.relative(srcDir, file)), undefined)
})

// The proxy module's folders import one direction only (README "Layout"): daemon → paths → hbone →
// state | observe → address.ts. A file may import its own folder or a folder below it, never above
// or beside (state and observe stay independent of each other).
import assert from 'node:assert/strict'
import {readdir, readFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'
import {fileURLToPath} from 'node:url'

const proxyDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/lib/proxy')
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

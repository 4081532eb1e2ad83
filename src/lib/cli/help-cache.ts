// The root help (`ztctl --help`) rendered once by oclif and replayed from the user's cache dir: loading
// @oclif/core alone costs ~3× what Node's own start does. The key covers everything the text depends on
// (build, Node, platform, terminal width and colour, environment), so a stale text is never shown.
// Only node: built-ins here: this module runs before oclif is loaded. It never prints.
import {createHash} from 'node:crypto'
import {mkdirSync, readFileSync, renameSync, statSync, writeFileSync} from 'node:fs'
import {homedir} from 'node:os'
import {dirname, join, resolve} from 'node:path'

const MAX_TEXT_BYTES = 256 * 1024
/** Variables that change per shell, directory or benchmark run (hyperfine pads the environment), never the help text. */
const VOLATILE_ENV = new Set(['PWD', 'OLDPWD', '_', 'SHLVL', 'HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET'])

export function isRootHelp(argv: string[]): boolean {
  return argv.length === 1 && (argv[0] === '--help' || argv[0] === '-h')
}

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache')
  return join(base, 'ztctl')
}

function fileStamp(path: string): string {
  const stat = statSync(path, {throwIfNoEntry: false})
  return stat ? `${stat.size}:${stat.mtimeMs}` : 'none'
}

/** Plugins a user installed (`plugins install`) live in oclif's data dir and add to the help. */
function userPluginsFile(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'ztctl', 'package.json')
}

export function helpKey(root: string, stdout: {columns?: number; isTTY?: boolean}): string {
  const env = Object.entries(process.env)
    .filter(([name]) => !VOLATILE_ENV.has(name))
    .sort(([a], [b]) => a.localeCompare(b))
  const parts = [
    fileStamp(join(root, 'oclif.manifest.json')),
    fileStamp(join(root, 'package.json')),
    fileStamp(userPluginsFile(process.env)),
    process.version,
    process.platform,
    process.arch,
    String(stdout.isTTY ?? false),
    String(stdout.columns ?? ''),
    JSON.stringify(env),
  ]
  return createHash('sha256').update(parts.join('\n')).digest('hex')
}

function cacheFile(dir: string): string {
  return join(dir, 'root-help.json')
}

/** The cached text for this key, or undefined (missing, other key, unreadable or garbage). */
export function readHelp(dir: string, key: string): string | undefined {
  try {
    const data: unknown = JSON.parse(readFileSync(cacheFile(dir), 'utf8'))
    if (typeof data !== 'object' || data === null) return undefined
    const {key: storedKey, text} = data as {key?: unknown; text?: unknown}
    return storedKey === key && typeof text === 'string' ? text : undefined
  } catch {
    return undefined
  }
}

/**
 * mkdir -p, one level at a time; false when DIR cannot be made. Node's recursive mkdir (and so
 * module.enableCompileCache) never returns on virtual file systems: under /proc, mkdir answers ENOENT
 * for ever. One level at a time stops at the first level that fails twice.
 */
export function ensureDir(dir: string): boolean {
  const target = resolve(dir)
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      mkdirSync(target)
      return true
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'EEXIST') return statSync(target, {throwIfNoEntry: false})?.isDirectory() === true
      if (code !== 'ENOENT' || dirname(target) === target || !ensureDir(dirname(target))) return false
    }
  }

  return false
}

/** One entry only (the cache stays one small file); a read-only or full disk just means no cache. */
export function writeHelp(dir: string, key: string, text: string): void {
  if (text.length === 0 || Buffer.byteLength(text) > MAX_TEXT_BYTES) return
  try {
    if (!ensureDir(dir)) return
    const temp = `${cacheFile(dir)}.${process.pid}`
    writeFileSync(temp, JSON.stringify({key, text}))
    renameSync(temp, cacheFile(dir))
  } catch {
    // no cache: the next start renders again
  }
}

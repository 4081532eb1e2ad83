#!/usr/bin/env node
// Node's version first, before anything that needs a newer one (node:sqlite, process.execve): the
// `engines` field of package.json is advice npm gives, not a check at run time. Keep in step with it.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 13)) {
  process.stderr.write(
    `Error (ZT_ERR_NODE_VERSION): ztctl needs Node.js 22.13 or newer; this is Node.js ${process.version} (${process.execPath})\n` +
      'Try this: install Node.js 22 LTS or newer (https://nodejs.org, or `nvm install 22`), or in a ztctl checkout run `. .ci/env.sh`, which puts Node 24 on PATH\n',
  )
  process.exit(1)
}

const root = new URL('..', import.meta.url).pathname
const argv = process.argv.slice(2)
let helpCache, helpKey // set by cachedRootHelp, used by runOclif
const output = (await fastVersion()) ?? (await cachedRootHelp())
if (output === undefined) {
  await runOclif()
} else {
  process.stdout.write(output.text)
}

/** `version` / `--version` without oclif when the answer needs none (src/lib/cli/version-fast-path.ts). */
async function fastVersion() {
  if (argv[0] !== 'version' && argv[0] !== '--version') return undefined
  const text = (await import('../dist/lib/cli/version-fast-path.js')).fastVersionOutput(argv, root)
  return text === undefined ? undefined : {text}
}

/** The root help from the cache; without one, helpKey says what to store the rendering under. */
async function cachedRootHelp() {
  helpCache = await import('../dist/lib/cli/help-cache.js')
  helpKey = helpCache.isRootHelp(argv) ? helpCache.helpKey(root, process.stdout) : undefined
  const text = helpKey && helpCache.readHelp(helpCache.cacheDir(), helpKey)
  return text ? {text} : undefined
}

async function runOclif() {
  // Compile cache makes every later start cheaper; it is absent on some Node builds, and a read-only
  // cache dir only means no cache. Its own mkdir never returns under /proc: ensureDir goes first.
  const {default: module} = await import('node:module')
  const compileDir = `${helpCache.cacheDir()}/compile`
  try {
    if (helpCache.ensureDir(compileDir)) module.enableCompileCache?.(compileDir)
  } catch {}
  const captured = helpKey ? captureOutput() : undefined
  const {execute} = await import('@oclif/core')
  await execute({dir: import.meta.url})
  const text = captured?.()
  if (text !== undefined) helpCache.writeHelp(helpCache.cacheDir(), helpKey, text)
}

/** Tees stdout; the returned function gives the text when the run was clean (exit 0, nothing on stderr). */
function captureOutput() {
  const chunks = []
  let clean = true
  const write = process.stdout.write.bind(process.stdout)
  const writeErr = process.stderr.write.bind(process.stderr)
  process.stdout.write = (chunk, ...rest) => {
    chunks.push(String(chunk))
    return write(chunk, ...rest)
  }
  process.stderr.write = (chunk, ...rest) => {
    clean = false
    return writeErr(chunk, ...rest)
  }
  return () => (clean && !process.exitCode ? chunks.join('') : undefined)
}

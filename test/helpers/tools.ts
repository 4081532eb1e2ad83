// The host tools the tests drive and the Debian package of each, from the one list `.ci/debian-packages.txt`
// (which `.ci/env.sh` installs as root). A test whose tool is missing fails at once, naming the package,
// never with a raw ENOENT or a timeout.
//
//   requireTools('socat', 'tshark')       // at the top of a test (topo.exec/spawn also check their command)
//   requirePackages('python3-h2')         // a package that is no command: its proof file must exist
//   const PATH = pathWithout(t, 'nft')    // process.env.PATH in which `nft` is not found (removed at t.after)
import {accessSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {debianPackageOf} from '../../src/lib/exec/tools.js'

export const PACKAGE_LIST = new URL('../../.ci/debian-packages.txt', import.meta.url)

export interface DebianPackage {
  name: string
  /** the file whose presence says the package is installed */
  proof: string
  /** the comment: who needs it */
  why: string
  line: number
}

export function debianPackages(): DebianPackage[] {
  return readFileSync(PACKAGE_LIST, 'utf8').split('\n').flatMap((text, index) => {
    const [fields = '', ...comment] = text.split('#')
    const [name, proof] = fields.trim().split(/\s+/)
    return name ? [{line: index + 1, name, proof: proof ?? '', why: comment.join('#').trim()}] : []
  })
}

/** The listed package that provides TOOL: the one whose proof file is named so, else the one the CLI names. */
export function packageOfTool(tool: string): string | undefined {
  const packages = debianPackages()
  const named = packages.find((pkg) => path.basename(pkg.proof) === tool)?.name ?? debianPackageOf(tool)
  return packages.some((pkg) => pkg.name === named) ? named : undefined
}

/** The absolute path of TOOL on PATH_VALUE (an executable file), if any. */
export function findOnPath(tool: string, pathValue = process.env.PATH ?? ''): string | undefined {
  if (tool.includes('/')) return tool
  for (const dir of pathValue.split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, tool)
    try {
      accessSync(candidate, constants.X_OK)
      if (statSync(candidate).isFile()) return candidate
    } catch {
      // not here
    }
  }

  return undefined
}

/** Why TOOL cannot run (a sentence naming its Debian package), or undefined when it is on PATH_VALUE. */
export function toolProblem(tool: string, pathValue = process.env.PATH ?? ''): string | undefined {
  if (findOnPath(tool, pathValue)) return undefined
  const pkg = packageOfTool(tool)
  return pkg
    ? `this test needs \`${tool}\`, which is not installed: it comes with the Debian package ${pkg} (apt-get install ${pkg}; as root, \`. .ci/env.sh\` installs every package of .ci/debian-packages.txt)`
    : `this test needs \`${tool}\`, which is not on PATH, and no package of .ci/debian-packages.txt provides it: add the Debian package that does to that list`
}

/** Throws at once, naming it, when a Debian package of the list is not installed (its proof file is missing). */
export function requirePackages(...names: string[]): void {
  const packages = debianPackages()
  for (const name of names) {
    const pkg = packages.find((candidate) => candidate.name === name)
    if (!pkg) throw new Error(`the Debian package ${name} is not in .ci/debian-packages.txt: add it there`)
    try {
      statSync(pkg.proof)
    } catch {
      throw new Error(`this test needs the Debian package ${name}, which is not installed (no ${pkg.proof}): apt-get install ${name}; as root, \`. .ci/env.sh\` installs every package of .ci/debian-packages.txt`)
    }
  }
}

/** Throws at once, naming the Debian package, when one of TOOLS is not on PATH. */
export function requireTools(...tools: string[]): void {
  const problems = tools.map((tool) => toolProblem(tool)).filter((problem) => problem !== undefined)
  if (problems.length > 0) throw new Error(problems.join('\n'))
}

/**
 * A PATH like process.env.PATH in which TOOL is not found: each directory that has it is replaced by a
 * temporary one with links to everything else in it (as on a machine without that package).
 */
export function pathWithout(t: {after(fn: () => void): void}, tool: string): string {
  const dirs: string[] = []
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    if (!findOnPath(tool, dir)) {
      dirs.push(dir)
      continue
    }

    const mirror = mkdtempSync(path.join(tmpdir(), `ztctl-no-${tool}-`))
    t.after(() => rmSync(mirror, {force: true, recursive: true}))
    for (const entry of readdirSync(dir)) if (entry !== tool) symlinkSync(path.join(dir, entry), path.join(mirror, entry))
    dirs.push(mirror)
  }

  return dirs.join(path.delimiter)
}

// The one list of Debian packages (.ci/debian-packages.txt): well-formed, complete for every tool the CLI
// and the tests run, installed on this machine (what `.ci/env.sh` does as root), and read the same way by
// .ci/install-packages.sh and the tests' requireTools.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {copyFile, mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'
import {fileURLToPath} from 'node:url'

import {debianPackageOf} from '../../src/lib/exec/tools.js'
import {IPTABLES_VARIANTS, iptablesToolName} from '../../src/lib/redirect/backend.js'
import {debianPackages, packageOfTool, toolProblem} from '../helpers/tools.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

function sh(script: string, args: string[]): Promise<{code: number; stderr: string; stdout: string}> {
  return new Promise((resolve) => {
    execFile('bash', [script, ...args], {timeout: 30_000}, (error, stdout, stderr) => resolve({code: error ? Number(error.code ?? 1) : 0, stderr, stdout}))
  })
}

async function sources(dir: string): Promise<string[]> {
  const entries = await readdir(path.join(root, dir), {recursive: true, withFileTypes: true})
  return Promise.all(entries.filter((entry) => entry.isFile() && entry.name.endsWith('.ts')).map((entry) => readFile(path.join(entry.parentPath, entry.name), 'utf8')))
}

test('every line names a package, the absolute path of a file it installs, and who needs it; no package twice', () => {
  const packages = debianPackages()
  assert.ok(packages.length >= 10)
  for (const pkg of packages) {
    assert.match(pkg.name, /^[a-z0-9][a-z0-9+.-]+$/, `line ${pkg.line}: a Debian package name`)
    assert.match(pkg.proof, /^\/\S+$/, `line ${pkg.line}: an absolute path`)
    assert.notEqual(pkg.why, '', `line ${pkg.line}: a comment saying who needs ${pkg.name}`)
  }

  assert.equal(new Set(packages.map((pkg) => pkg.name)).size, packages.length, 'each package once')
})

test('every tool the CLI runs and every tool the tests require comes from a listed package', async () => {
  const cliTools = new Set(['nsenter'])
  for (const text of await sources('src')) for (const match of text.matchAll(/\b(?:runTool|toolOutput|findTool|hasTool)\('([^']+)'/g)) cliTools.add(match[1]!)
  for (const variant of [...IPTABLES_VARIANTS, undefined]) {
    for (const family of [4, 6] as const) for (const command of ['iptables', 'save', 'restore'] as const) cliTools.add(iptablesToolName(variant, family, command))
  }

  const listed = new Set(debianPackages().map((pkg) => pkg.name))
  for (const tool of cliTools) assert.ok(listed.has(debianPackageOf(tool) ?? ''), `${tool} (package ${debianPackageOf(tool)}) is in .ci/debian-packages.txt`)

  const testTools = new Set<string>()
  for (const text of await sources('test')) {
    for (const call of text.matchAll(/requireTools\(([^)]*)\)/g)) for (const name of call[1]!.matchAll(/'([\w.-]+)'/g)) testTools.add(name[1]!)
    for (const call of text.matchAll(/topo\.(?:spawn|exec|execOk)\([^,]+, '([\w.-]+)'/g)) testTools.add(call[1]!)
    for (const call of text.matchAll(/requirePackages\(([^)]*)\)/g)) for (const name of call[1]!.matchAll(/'([\w.+-]+)'/g)) assert.ok(listed.has(name[1]!), `requirePackages('${name[1]}') is listed`)
  }

  for (const tool of ['socat', 'tshark', 'curl', 'promtool']) assert.ok(testTools.has(tool), `the tests require ${tool} (scan works)`)
  // Debian's essential packages (dash, libc-bin, coreutils) are on every Debian machine.
  for (const tool of [...testTools].filter((name) => !['env', 'getent', 'sh'].includes(name))) {
    assert.ok(packageOfTool(tool), `${tool}, which a test runs, comes from a package of .ci/debian-packages.txt`)
  }
})

test('a missing tool is named with its Debian package; one of no listed package says to add it', () => {
  assert.equal(toolProblem('socat', '/nonexistent'), 'this test needs `socat`, which is not installed: it comes with the Debian package socat (apt-get install socat; as root, `. .ci/env.sh` installs every package of .ci/debian-packages.txt)')
  assert.match(toolProblem('ip6tables-legacy-save', '/nonexistent')!, /Debian package iptables \(apt-get install iptables;/)
  assert.match(toolProblem('ztctl-no-such-tool', '/nonexistent')!, /no package of \.ci\/debian-packages\.txt provides it: add the Debian package that does to that list/)
  assert.equal(toolProblem('sh'), undefined)
})

test('install-packages.sh reads the list as the tests do: a package is missing when its file is', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ztctl-packages-'))
  t.after(() => rm(dir, {force: true, recursive: true}))
  await copyFile(path.join(root, '.ci/install-packages.sh'), path.join(dir, 'install-packages.sh'))
  await writeFile(path.join(dir, 'debian-packages.txt'), '# a comment\n\nthere   /bin/sh            # here\nabsent  /nonexistent/zt-a   # a test\nabsent  /nonexistent/zt-b   # twice\nalso-absent /nonexistent/zt-c\n')
  const missing = await sh(path.join(dir, 'install-packages.sh'), ['--check'])
  assert.deepEqual([missing.code, missing.stdout], [1, 'absent\nalso-absent\n'])

  const onThisMachine = await sh(path.join(root, '.ci/install-packages.sh'), ['--check'])
  assert.equal(onThisMachine.code, 0, `not installed here: ${onThisMachine.stdout.trim().split('\n').join(', ')} (as root, \`. .ci/env.sh\` installs them)`)
})

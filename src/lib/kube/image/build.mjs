// `npm run image`: the agent/controller image from the build output, without a Docker engine or a registry.
// A rootfs (Debian's usr-merged layout) gets /app (bin/, dist/, package.json, oclif.manifest.json, the production
// node_modules of package-lock.json, the two addons in build/Release), the Node binary running this script at
// /usr/local/bin/node, iptables (legacy and nft, IPv4 and IPv6, -save/-restore, xtables modules), nft, ip and
// busybox-static (sh), each with the shared libraries ldd names. umoci packs it as an OCI image; skopeo writes a
// docker-archive that `ctr -n k8s.io images import` and `docker load` take. ENTRYPOINT /app/bin/ztctl.
// The Dockerfile beside this file builds the same layout for registries.
//
//   node src/lib/kube/image/build.mjs [--ref ztctl.local/ztctl:VERSION] [--out FILE] [--force] [--json]
// Prints the archive path (--json: {"ref","tar"}). Skips the build when no input changed (a content digest).
import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import process from 'node:process'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = path.resolve(here, '../../../..')
const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8'))
const {values: flags} = parseArgs({options: {force: {type: 'boolean'}, json: {type: 'boolean'}, out: {type: 'string'}, ref: {type: 'string'}}})
const ref = flags.ref ?? process.env.ZTCTL_IMAGE_REF ?? `ztctl.local/ztctl:${pkg.version}`
const out = path.resolve(flags.out ?? path.join(repoRoot, 'build/image', `${ref.replaceAll(/[/:]/g, '_')}.tar`))
const addons = ['ztctl_netns', 'ztctl_hbone'].map((name) => `build/Release/${name}.node`)
// the CNI plugin: a static executable the CNI agent copies onto the node
const appFiles = ['bin', 'dist', 'package.json', 'oclif.manifest.json', ...addons, 'build/Release/ztctl-cni']
// what the node agent and the CNI agent run inside pods (the contract's "Image" part)
const imageTools = {'/usr/sbin/xtables-legacy-multi': 'iptables', '/usr/sbin/xtables-nft-multi': 'iptables', '/usr/sbin/nft': 'nftables',
  '/usr/bin/ip': 'iproute2', '/usr/bin/busybox': 'busybox-static'}
const tools = Object.keys(imageTools)
// what builds the image, and the Debian package of each
const builderTools = {'/usr/bin/umoci': 'umoci', '/usr/bin/skopeo': 'skopeo', '/usr/bin/ldd': 'libc-bin', '/usr/sbin/ldconfig': 'libc-bin'}
const xtablesLinks = {
  'xtables-legacy-multi': ['iptables-legacy', 'iptables-legacy-save', 'iptables-legacy-restore', 'ip6tables-legacy', 'ip6tables-legacy-save', 'ip6tables-legacy-restore'],
  // the plain names are the nft variant, as on Debian 12 by default
  'xtables-nft-multi': ['iptables-nft', 'iptables-nft-save', 'iptables-nft-restore', 'ip6tables-nft', 'ip6tables-nft-save', 'ip6tables-nft-restore',
    'iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore'],
}
const xtablesModules = '/usr/lib/x86_64-linux-gnu/xtables'
const busyboxApplets = ['sh', 'ls', 'cat', 'echo', 'env', 'ps', 'sleep', 'grep', 'sed', 'awk', 'head', 'tail', 'mkdir', 'rm', 'cp', 'mv', 'ln',
  'chmod', 'id', 'hostname', 'nc', 'netstat', 'nsenter', 'test', '[', 'true', 'false', 'wc', 'tee', 'kill', 'date', 'uname', 'vi', 'find', 'xargs']

/** What the user must fix before the image can be built (printed without a stack). */
class ImageInputError extends Error {}

function fail(message) {
  throw new ImageInputError(message)
}

/** a digest of every input's content: tsc rewrites dist/ on each build, so mtimes would rebuild the image needlessly */
function inputsDigest() {
  const hash = createHash('sha256').update(`${ref}\0${process.version}\0${process.execPath}\0`)
  const add = (file) => {
    const full = path.join(repoRoot, file)
    if (lstatSync(full).isDirectory()) return readdirSync(full).sort().forEach((entry) => add(path.join(file, entry)))
    hash.update(`${file}\0`).update(readFileSync(full))
  }

  for (const file of [...appFiles, 'package-lock.json', 'src/lib/kube/image']) add(file)
  return hash.digest('hex')
}

/** /bin, /sbin, /lib, /lib64 live under /usr in the image, as on Debian 12 */
function usrMerged(file) {
  return file.replace(/^\/(bin|sbin|lib|lib64)\//, '/usr/$1/')
}

/** copy FILE's content to the same path in ROOT (usr-merged), following symlinks */
function copyHostFile(root, file) {
  const target = path.join(root, usrMerged(file))
  if (existsSync(target)) return
  mkdirSync(path.dirname(target), {recursive: true})
  copyFileSync(realpathSync(file), target)
  chmodSync(target, statSync(file).mode & 0o7777)
}

/** the shared libraries (and the loader) FILE needs, as ldd prints them */
function sharedLibraries(file) {
  let text
  try {
    text = execFileSync('ldd', [file], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})
  } catch {
    return [] // statically linked ("not a dynamic executable")
  }

  return [...text.matchAll(/(\/\S+) \(0x/g)].map((match) => match[1])
}

// nothing at run time reads these (42 of 87 MB of node_modules: client-node's typings and source maps)
const notRuntime = /\.(map|d\.[cm]?ts|md)$/

/** production packages of package-lock.json (no dev flag), each without its nested node_modules (own entries) */
function copyProductionModules(appDir) {
  const lock = JSON.parse(readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8'))
  for (const [location, entry] of Object.entries(lock.packages)) {
    if (!location.startsWith('node_modules/') || entry.dev || entry.link) continue
    const source = path.join(repoRoot, location)
    if (!existsSync(source)) continue // an optional package for another platform
    const filter = (file) => file !== path.join(source, 'node_modules') && !notRuntime.test(file)
    cpSync(source, path.join(appDir, location), {filter, recursive: true, verbatimSymlinks: true})
  }
}

function stageRootfs(root) {
  for (const dir of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64', 'usr/local/bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'run', 'var/run', 'root']) {
    mkdirSync(path.join(root, dir), {recursive: true})
  }

  for (const dir of ['bin', 'sbin', 'lib', 'lib64']) symlinkSync(`usr/${dir}`, path.join(root, dir))
  chmodSync(path.join(root, 'tmp'), 0o1777)
  const app = path.join(root, 'app')
  for (const file of appFiles) cpSync(path.join(repoRoot, file), path.join(app, file), {recursive: true})
  copyProductionModules(app)
  copyFileSync(path.join(here, 'ztctl'), path.join(app, 'bin/ztctl'))
  chmodSync(path.join(app, 'bin/ztctl'), 0o755)

  const node = path.join(root, 'usr/local/bin/node')
  copyFileSync(process.execPath, node)
  chmodSync(node, 0o755)
  const modules = readdirSync(xtablesModules).filter((file) => file.endsWith('.so')).map((file) => path.join(xtablesModules, file))
  const binaries = [process.execPath, ...tools, ...modules, ...addons.map((addon) => path.join(repoRoot, addon))]
  for (const tool of [...tools, ...modules]) copyHostFile(root, tool)
  for (const library of new Set(binaries.flatMap(sharedLibraries))) copyHostFile(root, library)
  for (const [multi, names] of Object.entries(xtablesLinks)) {
    for (const name of names) symlinkSync(multi, path.join(root, 'usr/sbin', name))
  }

  for (const applet of busyboxApplets) {
    if (!existsSync(path.join(root, 'usr/bin', applet)) && !existsSync(path.join(root, 'usr/sbin', applet))) symlinkSync('busybox', path.join(root, 'usr/bin', applet))
  }

  for (const file of ['/etc/protocols', '/etc/services', '/etc/ethertypes']) if (existsSync(file)) copyHostFile(root, file)
  if (existsSync('/usr/share/iproute2')) cpSync('/usr/share/iproute2', path.join(root, 'usr/share/iproute2'), {recursive: true})
  writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n')
  writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n')
  writeFileSync(path.join(root, 'etc/ld.so.conf'), '/usr/local/lib\n/usr/lib/x86_64-linux-gnu\n')
  execFileSync('ldconfig', ['-r', root])
}

function checkTools() {
  const missing = Object.entries({...builderTools, ...imageTools}).filter(([file]) => !existsSync(file))
  if (missing.length > 0) fail(`missing ${missing.map(([file]) => file).join(', ')}: apt-get install ${[...new Set(missing.map(([, name]) => name))].join(' ')}`)
  const missingApp = appFiles.filter((file) => !existsSync(path.join(repoRoot, file)))
  if (missingApp.length > 0) fail(`no ${missingApp.join(', ')}: run \`npm run build\` first`)
  if (sharedLibraries('/usr/bin/busybox').length > 0) fail('/usr/bin/busybox is dynamically linked: apt-get install busybox-static')
}

function report() {
  process.stdout.write(flags.json ? `${JSON.stringify({ref, tar: out})}\n` : `${out}\n`)
}

/** Pack the image into `out` unless the one there was built from the same inputs. */
function buildImage() {
  checkTools()
  const stampFile = `${out}.inputs`
  const digest = inputsDigest()
  if (!flags.force && existsSync(out) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === digest) return
  const started = Date.now()
  const work = mkdtempSync(path.join(tmpdir(), 'ztctl-image-'))
  try {
    const layout = path.join(work, 'oci')
    const bundle = path.join(work, 'bundle')
    const umoci = (...args) => execFileSync('umoci', args, {stdio: ['ignore', 'ignore', 'inherit']})
    umoci('init', '--layout', layout)
    umoci('new', '--image', `${layout}:ztctl`)
    umoci('unpack', '--image', `${layout}:ztctl`, bundle)
    stageRootfs(path.join(bundle, 'rootfs'))
    umoci('repack', '--image', `${layout}:ztctl`, '--history.created_by', 'npm run image', bundle)
    umoci('config', '--image', `${layout}:ztctl`, '--config.entrypoint', '/app/bin/ztctl', '--config.workingdir', '/app',
      '--config.env', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '--config.user', '0:0',
      '--config.label', `org.opencontainers.image.version=${pkg.version}`, '--config.label', 'org.opencontainers.image.title=ztctl',
      '--history.created_by', 'npm run image: ENTRYPOINT /app/bin/ztctl')
    mkdirSync(path.dirname(out), {recursive: true})
    rmSync(`${out}.partial`, {force: true})
    execFileSync('skopeo', ['copy', '--quiet', `oci:${layout}:ztctl`, `docker-archive:${out}.partial:${ref}`], {stdio: ['ignore', 'ignore', 'inherit']})
    renameSync(`${out}.partial`, out)
    writeFileSync(stampFile, digest)
    process.stderr.write(`npm run image: ${ref} -> ${out} (${Math.round(statSync(out).size / 2 ** 20)} MiB, ${((Date.now() - started) / 1000).toFixed(1)} s)\n`)
  } finally {
    rmSync(work, {force: true, recursive: true})
  }
}

try {
  buildImage()
  report()
} catch (error) {
  if (!(error instanceof ImageInputError)) throw error
  process.stderr.write(`npm run image: ${error.message}\n`)
  process.exitCode = 1
}

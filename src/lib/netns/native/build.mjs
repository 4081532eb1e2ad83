// Build the N-API addons (ztctl_netns: netns sockets; ztctl_hbone: the native HBONE data path) with node-gyp, offline: headers come from the running Node's own
// install (two levels above process.execPath; nghttp2.h from Debian's libnghttp2-dev), never from the network. node-gyp is npm's bundled copy
// (npm exports its path as npm_config_node_gyp to run-scripts) or one found next to npm.
// ZTCTL_SANITIZE=1 builds them with AddressSanitizer + UndefinedBehaviorSanitizer (gcc's runtime; node must then run with
// LD_PRELOAD of libasan: test/fuzz/sanitized.sh does both). build/flavour records which build is there, so the next plain build replaces it.
import {execFileSync} from 'node:child_process'
import {existsSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import process from 'node:process'
import {fileURLToPath} from 'node:url'

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..')
const nodeDir = path.dirname(path.dirname(process.execPath))

function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    process.env.npm_execpath && path.join(path.dirname(process.env.npm_execpath), '../node_modules/node-gyp/bin/node-gyp.js'),
    path.join(repoRoot, 'node_modules/node-gyp/bin/node-gyp.js'),
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
  ]
  const found = candidates.find((candidate) => candidate && existsSync(candidate))
  if (!found) throw new Error('node-gyp not found (looked for npm\'s bundled copy); install npm or add node-gyp as a devDependency')
  return found
}

if (!existsSync(path.join(nodeDir, 'include/node/node_api.h'))) {
  throw new Error(`Node headers not found under ${nodeDir}/include/node; this Node install does not ship them`)
}

// Skip when the addon is newer than its sources: several builds may run at once in a shared checkout,
// and a needless `rebuild` would delete the addon under a running test.
// the two addons and the CNI plugin executable (src/lib/cni/plugin)
const addons = [...['ztctl_netns', 'ztctl_hbone'].map((name) => `build/Release/${name}.node`), 'build/Release/ztctl-cni'].map((file) => path.join(repoRoot, file))
const sources = ['binding.gyp', 'src/lib/netns/native/netns.c', 'src/lib/proxy/hbone/native/hbone.c', 'src/lib/cni/plugin/ztctl-cni.c'].map((source) => path.join(repoRoot, source))
const flavour = process.env.ZTCTL_SANITIZE === '1' ? 'sanitize' : 'plain'
const flavourFile = path.join(repoRoot, 'build/flavour')
const upToDate = (existsSync(flavourFile) ? readFileSync(flavourFile, 'utf8').trim() : 'plain') === flavour
  && addons.every((addon) => existsSync(addon) && sources.every((source) => statSync(source).mtimeMs <= statSync(addon).mtimeMs))
if (!upToDate) {
  execFileSync(process.execPath, [findNodeGyp(), 'rebuild', `--nodedir=${nodeDir}`, '--loglevel=warn', '--', `-Dsanitize=${flavour === 'sanitize' ? 1 : 0}`], {cwd: repoRoot, stdio: 'inherit'})
  writeFileSync(flavourFile, `${flavour}\n`)
}

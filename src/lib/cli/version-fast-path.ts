// `ztctl version` and `ztctl --version` answered without loading oclif (bin/run.js): loading @oclif/core
// and the base command costs several times what Node's own start does, and these two are what scripts
// and shells call most. Only when the answer is certain: no context (so no controller to ask) and no
// oclif theme; every other argument list, or a home with contexts, goes to the oclif command.
// Only node: built-ins here; it never prints.
import {existsSync, readFileSync} from 'node:fs'
import {arch, homedir, platform, release} from 'node:os'
import {join, resolve} from 'node:path'

export interface VersionData {
  client: {node: string; version: string}
  controller?: {caFingerprint: string; trustDomain: string; url: string; version: string}
}

/** The human rendering of `ztctl version`, shared with the oclif command. */
export function versionText(data: VersionData): string {
  const {client, controller} = data
  return [
    `client version: ${client.version} (node ${client.node})`,
    controller ? `controller version: ${controller.version} (${controller.url}, trust domain ${controller.trustDomain})` : 'controller version: not reachable',
  ].join('\n')
}

interface PackageJson {
  name: string
  oclif?: {bin?: string; dirname?: string}
  version?: string
}

/** The output formats the fast path knows for `version ARGS`: 'table' or 'json', else undefined. */
function requestedFormat(args: string[]): 'json' | 'table' | undefined {
  const [first, second, ...rest] = args
  if (first === undefined) return 'table'
  if (rest.length > 0) return undefined
  if (first === '--json') return second === undefined ? 'json' : undefined
  const value = first === '-o' || first === '--output' ? second : second === undefined && first.startsWith('--output=') ? first.slice('--output='.length) : undefined
  return value === 'json' || value === 'table' ? value : undefined
}

/** Where oclif's Config puts the config dir: $ZTCTL_CONFIG_DIR, else $XDG_CONFIG_HOME/ztctl, else ~/.config/ztctl. */
function oclifConfigDir(pjson: PackageJson, env: NodeJS.ProcessEnv): string {
  const scoped = env[`${(pjson.oclif?.bin ?? pjson.name).replaceAll('@', '').replaceAll(/[/-]/g, '_').toUpperCase()}_CONFIG_DIR`]
  if (scoped) return scoped
  return join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), pjson.oclif?.dirname ?? pjson.name)
}

/** A context could name a controller to ask, and a theme colours --json: both are oclif's to handle. */
function needsOclif(pjson: PackageJson, env: NodeJS.ProcessEnv): boolean {
  const configDir = oclifConfigDir(pjson, env)
  const homeConfigDir = env.ZTCTL_HOME ? resolve(env.ZTCTL_HOME) : configDir
  return existsSync(join(homeConfigDir, 'contexts.json')) || existsSync(join(configDir, 'theme.json'))
}

/** oclif names the platform "wsl" under Windows' Linux (wsl-utils): left to oclif. */
function isWsl(): boolean {
  if (platform() !== 'linux') return false
  if (/microsoft/i.test(release())) return true
  try {
    return /microsoft/i.test(readFileSync('/proc/version', 'utf8'))
  } catch {
    return false
  }
}

/** Everything `ztctl ARGV` prints (final newline included) when no oclif is needed for it, else undefined. */
export function fastVersionOutput(argv: string[], root: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const [command, ...args] = argv
  if (command !== 'version' && command !== '--version') return undefined
  let pjson: PackageJson
  try {
    pjson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as PackageJson
  } catch {
    return undefined
  }

  const version = pjson.version || '0.0.0'
  if (command === '--version') {
    // oclif prints its user agent for --version in first place, whatever follows
    return isWsl() ? undefined : `${pjson.name}/${version} ${platform()}-${arch() === 'ia32' ? 'x86' : arch()} node-${process.version}\n`
  }

  const format = requestedFormat(args)
  if (format === undefined || needsOclif(pjson, env)) return undefined
  const data: VersionData = {client: {node: process.version, version}}
  return `${format === 'json' ? JSON.stringify(data, null, 2) : versionText(data)}\n`
}

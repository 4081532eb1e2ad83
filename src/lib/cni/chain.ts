// Chaining ztctl's plugin into the node's CNI configuration, and taking it out again. The node's primary
// configuration is the first *.conflist the runtime reads (sorted by name); ztctl's entry goes last in its
// `plugins`, so it runs after the primary plugin made the pod's interface and gets its result (prevResult).
// The file's exact bytes from before are kept beside our state (outside the configuration directory, where
// the runtime would read them); taking the plugin out writes those bytes back when the file is still the one
// we wrote, so the node's configuration is restored byte for byte. Every write is a rename of a complete
// file, so the runtime never reads half a configuration.
import {createHash} from 'node:crypto'
import {copyFile, chmod, readdir, readFile, rename, rm} from 'node:fs/promises'
import path from 'node:path'

import {ZtError} from '../errors.js'
import {makeDir, writeFileAtomic} from '../home/home.js'
import {CNI_PLUGIN_TYPE} from './plugin-protocol.js'

export const PLUGIN_BINARY = 'ztctl-cni'
const CONFIG_FILE = /\.(conflist|conf|json)$/
const MAX_CONFIG_BYTES = 1024 * 1024

export interface ChainOptions {
  confDir: string
  /** where the original bytes and what we wrote are kept (the CNI agent's directory on the host) */
  stateDir: string
  /** the plugin's entry in the chain: {type: 'ztctl-cni', socket: …} */
  entry: Record<string, unknown>
}

/** What chaining left on disk, kept in STATE_DIR/chain.json. */
interface ChainRecord {
  file: string
  /** sha256 of the bytes we wrote: a file that still has them is ours to restore */
  written: string
}

export interface ChainResult {
  file: string
  /** false when the entry was already there, as we want it */
  changed: boolean
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')
const recordPath = (stateDir: string): string => path.join(stateDir, 'chain.json')
const originalPath = (stateDir: string): string => path.join(stateDir, 'chain.original')

/** The configuration file the runtime uses: the first by name. */
export async function primaryConfig(confDir: string): Promise<string | undefined> {
  const names = (await readdir(confDir)).filter((name) => CONFIG_FILE.test(name)).sort()
  return names[0] === undefined ? undefined : path.join(confDir, names[0])
}

interface ConfList {
  plugins: Record<string, unknown>[]
  [key: string]: unknown
}

function parseConfList(bytes: Buffer, file: string): ConfList {
  if (bytes.length > MAX_CONFIG_BYTES) throw chainError(`${file} is larger than ${MAX_CONFIG_BYTES} bytes`)
  let value: unknown
  try {
    value = JSON.parse(bytes.toString('utf8'))
  } catch (error) {
    throw chainError(`${file} is not JSON (${(error as Error).message})`)
  }

  const plugins = (value as {plugins?: unknown}).plugins
  if (typeof value !== 'object' || value === null || !Array.isArray(plugins) || plugins.some((plugin) => typeof plugin !== 'object' || plugin === null)) {
    throw chainError(`${file} is not a network configuration list (no "plugins" list): ztctl chains only into a .conflist`)
  }

  return value as ConfList
}

const chainError = (message: string): ZtError =>
  new ZtError('ZT_ERR_CNI_CHAIN', message, {suggestion: "give the node's primary CNI a .conflist (the CNI agent retries on its own)"})

const withoutOurs = (list: ConfList): Record<string, unknown>[] => list.plugins.filter((plugin) => plugin.type !== CNI_PLUGIN_TYPE)

/** Put ENTRY last in the primary .conflist (keeping the file's bytes from before). Idempotent. */
export async function chainPlugin(options: ChainOptions): Promise<ChainResult> {
  const file = await primaryConfig(options.confDir)
  if (!file) throw chainError(`${options.confDir} holds no network configuration yet`)
  const bytes = await readFile(file)
  const list = parseConfList(bytes, file)
  const ours = list.plugins.filter((plugin) => plugin.type === CNI_PLUGIN_TYPE)
  const record = await readRecord(options.stateDir)
  if (ours.length === 1 && list.plugins.at(-1) === ours[0] && JSON.stringify(ours[0]) === JSON.stringify(options.entry) && record?.file === file) {
    return {changed: false, file}
  }

  // The bytes to restore later: the file as its owner wrote it. When it already holds our entry (a previous
  // agent chained it and nobody changed it since), the original from back then is still the right one.
  // (When its owner edited it since and kept our entry, the original is stale: unchaining then only edits.)
  const chainedBefore = record?.file === file && (sha256(bytes) === record.written || ours.length > 0)
  await makeDir(options.stateDir)
  if (!chainedBefore) {
    if (ours.length > 0) throw chainError(`${file} already names the ${CNI_PLUGIN_TYPE} plugin, and ztctl has no record of the file from before it`)
    await writeFileAtomic(originalPath(options.stateDir), bytes, 0o600)
  }

  const chained = Buffer.from(`${JSON.stringify({...list, plugins: [...withoutOurs(list), options.entry]}, null, 2)}\n`)
  await writeFileAtomic(recordPath(options.stateDir), JSON.stringify({file, written: sha256(chained)} satisfies ChainRecord), 0o600)
  await writeFileAtomic(file, chained, 0o644)
  return {changed: true, file}
}

export interface UnchainResult {
  file?: string
  /** 'restored': the exact bytes from before; 'edited': the owner changed the file since, only our entry was taken out */
  outcome: 'edited' | 'not-chained' | 'restored'
}

/** Take our entry out of the node's configuration: the bytes from before when the file is still ours. */
export async function unchainPlugin(options: Pick<ChainOptions, 'confDir' | 'stateDir'>): Promise<UnchainResult> {
  const record = await readRecord(options.stateDir)
  const file = record?.file ?? (await primaryConfig(options.confDir))
  let outcome: UnchainResult['outcome'] = 'not-chained'
  if (file) {
    const bytes = await readFile(file).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined
      throw error
    })
    if (bytes && record && sha256(bytes) === record.written) {
      await writeFileAtomic(file, await readFile(originalPath(options.stateDir)), 0o644)
      outcome = 'restored'
    } else if (bytes) {
      const list = parseConfList(bytes, file)
      if (list.plugins.some((plugin) => plugin.type === CNI_PLUGIN_TYPE)) {
        await writeFileAtomic(file, `${JSON.stringify({...list, plugins: withoutOurs(list)}, null, 2)}\n`, 0o644)
        outcome = 'edited'
      }
    }
  }

  await rm(recordPath(options.stateDir), {force: true})
  await rm(originalPath(options.stateDir), {force: true})
  return {file, outcome}
}

async function readRecord(stateDir: string): Promise<ChainRecord | undefined> {
  try {
    const value = JSON.parse(await readFile(recordPath(stateDir), 'utf8')) as Partial<ChainRecord>
    return typeof value.file === 'string' && typeof value.written === 'string' ? {file: value.file, written: value.written} : undefined
  } catch {
    return undefined
  }
}

/** Copy the plugin executable into the node's plugin directory (a rename: a plugin running now keeps its file). */
export async function installPluginBinary(source: string, binDir: string): Promise<string> {
  const target = path.join(binDir, PLUGIN_BINARY)
  const temp = path.join(binDir, `.${PLUGIN_BINARY}.${process.pid}.tmp`)
  try {
    await copyFile(source, temp)
    await chmod(temp, 0o755)
    await rename(temp, target)
  } catch (error) {
    await rm(temp, {force: true})
    throw new ZtError('ZT_ERR_CNI_INSTALL', `cannot install the CNI plugin into ${binDir}: ${(error as Error).message}`, {
      cause: error, suggestion: "the CNI DaemonSet mounts the node's plugin directory writable (values cni.binDir)",
    })
  }

  return target
}

export async function removePluginBinary(binDir: string): Promise<void> {
  await rm(path.join(binDir, PLUGIN_BINARY), {force: true})
}

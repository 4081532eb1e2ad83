// Where ztctl keeps state: $ZTCTL_HOME when set (one folder for everything, handy for tests and
// quickstart), else oclif's XDG config and data folders. Every failure to create or write a folder or
// file here is the user's to fix (a path that is a file, a read-only or virtual file system), so it
// becomes a ZtError naming the path, never a stack.
import {randomBytes} from 'node:crypto'
import {mkdir, open, readFile, rename, stat, unlink} from 'node:fs/promises'
import path from 'node:path'

import {ZtError} from '../errors.js'

export interface Home {
  /** contexts.json lives here */
  configDir: string
  /** controller data and identity files live here */
  dataDir: string
}

export function resolveHome(defaults: Home, env: NodeJS.ProcessEnv = process.env): Home {
  const root = env.ZTCTL_HOME
  if (root) return {configDir: path.resolve(root), dataDir: path.resolve(root)}
  return defaults
}

export const defaultControllerDataDir = (home: Home): string => path.join(home.dataDir, 'controller')
export const identitiesDir = (home: Home): string => path.join(home.dataDir, 'identities')

const FS_REASONS: Record<string, string> = {
  EACCES: 'permission denied', EEXIST: 'a file of that name exists', EISDIR: 'it is a folder', ENOENT: 'the file system does not allow it there',
  ENOSPC: 'no space left on the device', ENOTDIR: 'a part of the path is a file, not a folder', EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
}

/** A file-system failure on PATH as a user error (what, where, why, and what to do); a bug stays a bug. */
export function fileSystemError(error: unknown, action: string, target: string): unknown {
  const code = (error as NodeJS.ErrnoException)?.code
  if (ZtError.is(error) || code === undefined || !(code in FS_REASONS)) return error
  return new ZtError('ZT_ERR_FILESYSTEM', `cannot ${action} ${target}: ${FS_REASONS[code]} (${code})`, {
    cause: error,
    suggestion: 'use a folder you can write (set ZTCTL_HOME, or pass --data-dir); check the path with `ls -ld`',
  })
}

/**
 * mkdir -p, one level at a time: Node's recursive mkdir never returns on some virtual file systems
 * (`/proc/nope` loops on ENOENT), and a level at a time names the exact part that failed. Returns the
 * folders it created, outermost first.
 */
export async function makeDir(dir: string, mode = 0o755): Promise<string[]> {
  const missing: string[] = []
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const info = await stat(current).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined
      throw fileSystemError(error, 'create the folder', dir)
    })
    if (info) {
      if (!info.isDirectory()) throw fileSystemError(Object.assign(new Error('not a directory'), {code: 'ENOTDIR'}), 'create the folder', dir)
      break
    }

    missing.unshift(current)
    if (path.dirname(current) === current) break
  }

  for (const level of missing) {
    await mkdir(level, {mode}).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw fileSystemError(error, 'create the folder', level)
    })
  }

  return missing
}

/**
 * Write a file atomically and durably, with the given mode, creating its folder: a temp file written and
 * fsynced, renamed over FILE, then the folder fsynced (and the parent of every folder just made). After a
 * crash or a power loss FILE holds the old content or the new one, never an empty or partial file (keys
 * and identities are written this way).
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = path.dirname(file)
  const created = await makeDir(dir)
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    const handle = await open(temp, 'wx', mode)
    try {
      await handle.chmod(mode) // open's mode is masked by umask
      await handle.writeFile(data)
      await handle.sync() // the bytes reach the disk before any name points at them
    } finally {
      await handle.close()
    }

    await rename(temp, file)
    // The rename is a change of DIR; each folder makeDir just made is a change of its parent.
    for (const folder of [dir, ...created.map((level) => path.dirname(level)).reverse()]) await syncDir(folder)
  } catch (error) {
    await unlink(temp).catch(() => {})
    throw fileSystemError(error, 'write', file)
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

export async function readJsonFile<T>(file: string): Promise<T | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw fileSystemError(error, 'read', file)
  }

  return JSON.parse(text) as T
}

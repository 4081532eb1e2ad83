// Where ztctl keeps state: $ZTCTL_HOME when set (one folder for everything, handy for tests and
// quickstart), else oclif's XDG config and data folders.
import {chmod, mkdir, readFile, rename, writeFile} from 'node:fs/promises'
import path from 'node:path'

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

/** Write a file atomically (temp file + rename) with the given mode, creating its folder. */
export async function writeFileAtomic(file: string, data: string, mode = 0o600): Promise<void> {
  await mkdir(path.dirname(file), {recursive: true})
  const temp = `${file}.${process.pid}.tmp`
  await writeFile(temp, data, {mode})
  await chmod(temp, mode) // writeFile's mode is masked by umask
  await rename(temp, file)
}

export async function readJsonFile<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

// One controller per data dir: a lock file holding the owner's PID. A lock whose PID is gone (the
// previous controller was killed) is stale and taken over.
import {open, readFile, rm} from 'node:fs/promises'
import path from 'node:path'

import {ExitCode, ZtError} from '../errors.js'
import {fileSystemError} from '../home/home.js'
import {processAlive} from '../util/process-alive.js'

export interface DataDirLock {
  release(): Promise<void>
}

export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const file = path.join(dataDir, 'controller.lock')
  // Two attempts: the second one after removing a stale lock.
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600)
      await handle.writeFile(`${process.pid}\n`)
      await handle.close()
      return {release: () => rm(file, {force: true})}
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw fileSystemError(error, 'create the lock file', file)
    }

    const owner = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10)
    if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner)) {
      throw new ZtError('ZT_ERR_STORE_LOCKED', `another controller (PID ${owner}) is running on ${dataDir}`, {
        exit: ExitCode.conflict,
        suggestion: `stop it first, or pass another --data-dir (lock file: ${file})`,
      })
    }

    await rm(file, {force: true})
  }

  throw new ZtError('ZT_ERR_STORE_LOCKED', `cannot lock ${dataDir}: another process keeps taking the lock`, {exit: ExitCode.conflict})
}

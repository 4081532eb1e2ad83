// `ztctl file get NAME` and `file list`. A download goes to a partial file next to the destination, named
// after the file's SHA-256 (`.DEST.<sha256[:16]>.part`): a broken transfer — a cut connection, a killed
// command — resumes from the partial's length, and the agent sends only the rest (a range request). At the
// end the whole partial is checked against the SHA-256, synced, and renamed over the destination, so the
// destination is either the old file or the complete new one. A partial of another version of the file is
// not resumed (its name differs); a partial that fails the check is deleted.
import {createHash, type Hash} from 'node:crypto'
import {createReadStream, createWriteStream, type WriteStream} from 'node:fs'
import {mkdir, open, readdir, rename, stat, truncate, unlink} from 'node:fs/promises'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {describeSystemError, ExitCode, ZtError} from '../../errors.js'
import {type FrameChannel, writableDrained} from '../channel.js'
import type {FileInfo, FileReady} from '../messages.js'
import {readError, readFileInfo} from '../messages.js'
import {FrameType} from '../wire.js'
import {type AppClientOptions, appPool, type AppPool, type MeshClient, meshClient} from './connect.js'
import {agentError, type AppConnection, asZtError, startAppSession} from './session.js'

/** Attempts of one `file get` (the first and the resumptions after a broken transfer). */
const MAX_ATTEMPTS = 5
/** No byte for this long: the transfer is broken (the next attempt resumes). */
const STALL_TIMEOUT_MS = 30_000
const LIST_CONCURRENCY = 8
/** Bytes the destination's write stream buffers before the network waits for the disk. */
const WRITE_BUFFER_BYTES = 4 * 1024 * 1024

export interface FileProgress {
  /** bytes in the destination so far (a resumed transfer starts above 0) */
  received: number
  size: number
}

export interface FileGetResult {
  agent: string
  attempts: number
  /** bytes that travelled in this command (a resumed transfer: only the rest) */
  bytesTransferred: number
  durationMs: number
  name: string
  path: string
  /** where the first attempt started (0 unless an earlier command left a partial) */
  resumedFrom: number
  sha256: string
  size: number
}

export interface FileGetOptions extends AppClientOptions {
  /** take it from this agent (default: the first online one that publishes it) */
  from?: string
  name: string
  onProgress?: (progress: FileProgress) => void
  /** destination file or directory (default: NAME in the current directory) */
  output?: string
}

export async function getFile(options: FileGetOptions): Promise<FileGetResult> {
  const startedAt = Date.now()
  const client = await meshClient(options)
  const agent = publisherOf(client, options.name, options.from)
  const destination = await destinationPath(options.output, options.name)
  let bytesTransferred = 0
  let resumedFrom: number | undefined
  for (let attempt = 1; ; attempt++) {
    const pool = appPool(client)
    try {
      const info = await statFile(client, pool, agent, options.name)
      const partial = partialPath(destination, info.sha256)
      const {digest, offset, received} = await transfer(client, pool, agent, info, partial, options.onProgress)
      resumedFrom ??= offset
      bytesTransferred += received
      await verifyAndPlace(partial, destination, info, agent, digest)
      return {agent, attempts: attempt, bytesTransferred, durationMs: Date.now() - startedAt, name: info.name, path: destination, resumedFrom, sha256: info.sha256, size: info.size}
    } catch (error) {
      const failure = error as TransferError
      bytesTransferred += failure.received ?? 0
      resumedFrom ??= failure.offset
      // A wrapped attempt carries the original failure as its cause; a ZtError (this host's disk, say) is final as it is.
      if (!failure.resumable || attempt >= MAX_ATTEMPTS) throw asZtError(ZtError.is(error) ? error : (failure.cause ?? error), agent, 'file')
      await sleep(Math.min(250 * 2 ** attempt, 4000))
    } finally {
      pool.destroy()
    }
  }
}

/** A broken attempt: how far it got, and whether trying again (resuming) makes sense. */
interface TransferError extends Error {
  cause?: unknown
  offset?: number
  received?: number
  resumable?: boolean
}

function publisherOf(client: MeshClient, name: string, from: string | undefined): string {
  const publishers = client.directory.files.filter((file) => file.name === name && (from === undefined || file.agent === from)).map((file) => file.agent)
  if (publishers.length === 0) {
    throw new ZtError('ZT_ERR_FILE_NOT_FOUND', from ? `agent ${from} publishes no file "${name}"` : `no agent publishes a file "${name}"`, {
      exit: ExitCode.notFound,
      suggestion: 'see the published files with `ztctl file list`',
    })
  }

  const online = new Set(client.directory.agents.filter((agent) => agent.online).map((agent) => agent.name))
  return publishers.find((agent) => online.has(agent)) ?? publishers[0]
}

async function destinationPath(output: string | undefined, name: string): Promise<string> {
  const target = path.resolve(output ?? path.basename(name))
  const isDirectory = await stat(target).then((stats) => stats.isDirectory(), () => false)
  return isDirectory ? path.join(target, path.basename(name)) : target
}

const partialPath = (destination: string, sha256: string): string => path.join(path.dirname(destination), `.${path.basename(destination)}.${sha256.slice(0, 16)}.part`)

async function statFile(client: MeshClient, pool: AppPool, agent: string, name: string): Promise<FileInfo> {
  const connection = await startAppSession(client, pool, agent, 'file', {name, op: 'stat'}).catch((error: unknown) => {
    throw resumable(error, 0, 0, isConnectionFailure(error))
  })
  connection.close()
  return readFileInfo(connection.ready)
}

/** Append the rest of the file to PARTIAL (from its current length); the SHA-256 of all of it comes along. */
async function transfer(client: MeshClient, pool: AppPool, agent: string, info: FileInfo, partial: string, onProgress?: (progress: FileProgress) => void): Promise<{digest: string; offset: number; received: number}> {
  const {hash, offset} = await preparePartial(partial, info.size)
  onProgress?.({received: offset, size: info.size})
  if (offset === info.size) return {digest: hash.digest('hex'), offset, received: 0}
  const out = createWriteStream(partial, {flags: 'a', highWaterMark: WRITE_BUFFER_BYTES})
  let writeFailure: Error | undefined
  let connection: AppConnection | undefined
  // A failed write ends the transfer (the stream is destroyed, the loop ends) and is reported as ours.
  out.on('error', (error) => {
    writeFailure ??= error
    connection?.close()
  })
  let received = 0
  try {
    connection = await startAppSession(client, pool, agent, 'file', {name: info.name, offset, op: 'get'})
    try {
      if (writeFailure) throw writeFailure
      const ready: FileReady = readFileInfo(connection.ready)
      if (ready.sha256 !== info.sha256) throw Object.assign(new Error(`"${info.name}" changed on ${agent} between two requests`), {resumable: true})
      received = await writeData(connection.channel, {hash, out}, offset, info.size, agent, (bytes) => onProgress?.({received: offset + bytes, size: info.size}))
    } finally {
      connection.close()
    }

    await closeStream(out)
    return {digest: hash.digest('hex'), offset, received}
  } catch (error) {
    // Whatever arrived is on disk before the next attempt measures the partial.
    await closeStream(out).catch((closeError: Error) => (writeFailure ??= closeError))
    if (writeFailure) throw localFailure(partial, writeFailure)
    const counted = (error as TransferError).received ?? received
    throw resumable(error, offset, counted, isConnectionFailure(error) || (error as TransferError).resumable === true)
  }
}

/** PARTIAL's length (0 when absent or longer than the file) and the SHA-256 of what it holds. */
async function preparePartial(partial: string, size: number): Promise<{hash: Hash; offset: number}> {
  try {
    await mkdir(path.dirname(partial), {recursive: true})
    let offset = await stat(partial).then((stats) => stats.size, () => 0)
    if (offset > size) {
      await truncate(partial, 0)
      offset = 0
    }

    // What is on disk already goes into the hash first (an earlier run's bytes are checked too).
    return {hash: await hashPrefix(partial, offset), offset}
  } catch (error) {
    throw localFailure(partial, error)
  }
}

/** A failure of this host's disk: named, and not retried (another attempt would fail the same way). */
function localFailure(file: string, error: unknown): ZtError {
  return new ZtError('ZT_ERR_FILE_WRITE', `cannot write ${file}: ${describeSystemError(error)}`, {
    cause: error,
    suggestion: 'fetch to a place you can write, with room for the whole file (-o PATH)',
  })
}

async function closeStream(out: WriteStream): Promise<void> {
  if (out.closed || out.destroyed) return
  await new Promise<void>((resolve, reject) => {
    out.once('error', reject)
    out.end(() => resolve())
  })
}

/** A SHA-256 that has seen the first LENGTH bytes of FILE. */
async function hashPrefix(file: string, length: number): Promise<Hash> {
  const hash = createHash('sha256')
  if (length > 0) for await (const chunk of createReadStream(file, {end: length - 1, highWaterMark: 1024 * 1024})) hash.update(chunk as Buffer)
  return hash
}

/** DATA frames into OUT (and the hash) until the file is complete; returns the bytes taken. */
async function writeData(channel: FrameChannel, sink: {hash: Hash; out: WriteStream}, offset: number, size: number, agent: string, progress: (bytes: number) => void): Promise<number> {
  let written = 0
  let stall: NodeJS.Timeout | undefined
  const armStall = (): void => {
    clearTimeout(stall)
    stall = setTimeout(() => channel.destroy(), STALL_TIMEOUT_MS)
    stall.unref()
  }

  armStall()
  try {
    for await (const frame of channel.frames()) {
      if (frame.type === FrameType.Error) throw agentError(readError(frame), agent)
      if (frame.type !== FrameType.Data) continue
      if (offset + written + frame.payload.length > size) throw new Error(`agent ${agent} sent more than the file's ${size} bytes`)
      sink.hash.update(frame.payload)
      written += frame.payload.length
      // The network is not held up by the disk unless the write buffer is full.
      if (!sink.out.write(frame.payload)) await writableDrained(sink.out)
      armStall()
      progress(written)
      if (offset + written === size) return written
    }
  } catch (error) {
    throw Object.assign(error as Error, {received: written})
  } finally {
    clearTimeout(stall)
  }

  throw Object.assign(new Error(`the transfer from ${agent} broke after ${offset + written} of ${size} bytes`), {received: written, resumable: true})
}

/** Check the complete partial's SHA-256, sync it, rename it over the destination (atomic). */
async function verifyAndPlace(partial: string, destination: string, info: FileInfo, agent: string, digest: string): Promise<void> {
  if (digest !== info.sha256) {
    await unlink(partial).catch(() => {})
    throw new ZtError('ZT_ERR_FILE_CORRUPT', `"${info.name}" from ${agent} does not match its SHA-256 (got ${digest}, expected ${info.sha256}); the partial download was deleted`, {
      suggestion: 'fetch it again; if it fails again, the file changes on the agent while it is read',
    })
  }

  try {
    await syncPath(partial)
    await rename(partial, destination)
    await syncPath(path.dirname(destination))
  } catch (error) {
    throw localFailure(destination, error)
  }

  await removeStalePartials(destination)
}

async function syncPath(file: string): Promise<void> {
  const handle = await open(file, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Partials of older versions of the same destination, left by transfers that never finished. */
async function removeStalePartials(destination: string): Promise<void> {
  const prefix = `.${path.basename(destination)}.`
  const names = await readdir(path.dirname(destination)).catch(() => [] as string[])
  await Promise.all(names.filter((name) => name.startsWith(prefix) && /\.[0-9a-f]{16}\.part$/.test(name)).map((name) => unlink(path.join(path.dirname(destination), name)).catch(() => {})))
}

function resumable(error: unknown, offset: number, received: number, canResume: boolean): TransferError {
  const wrapped = new Error((error as Error).message) as TransferError
  return Object.assign(wrapped, {cause: error, offset, received, resumable: canResume})
}

/** A failure of the connection (worth resuming) rather than a refusal by the agent. */
function isConnectionFailure(error: unknown): boolean {
  if ((error as TransferError).resumable) return true
  if (!ZtError.is(error)) return true
  return ['ZT_ERR_APP_CLOSED', 'ZT_ERR_HBONE_DIAL', 'ZT_ERR_HBONE_REFUSED', 'ZT_ERR_HBONE_TIMEOUT', 'ZT_ERR_HBONE_TLS', 'ZT_ERR_RESPONSE_TIMEOUT'].includes(error.code)
}

export interface FileListing {
  agent: string
  /** why the agent could not be asked or refused (state not ok) */
  reason?: string
  modified?: string
  name: string
  sha256?: string
  size?: number
  state: 'ok' | 'offline' | 'refused' | 'unreadable'
}

/** Every published file this identity can see, with size and SHA-256 from its agent. */
export async function listFiles(options: AppClientOptions): Promise<FileListing[]> {
  const client = await meshClient(options)
  const online = new Set(client.directory.agents.filter((agent) => agent.online).map((agent) => agent.name))
  const pool = appPool(client)
  try {
    const files = [...client.directory.files].sort((a, b) => a.name.localeCompare(b.name) || a.agent.localeCompare(b.agent))
    const listings: FileListing[] = []
    for (let index = 0; index < files.length; index += LIST_CONCURRENCY) {
      listings.push(...await Promise.all(files.slice(index, index + LIST_CONCURRENCY).map(async ({agent, name}): Promise<FileListing> => {
        if (!online.has(agent)) return {agent, name, state: 'offline'}
        try {
          const {modified, sha256, size} = await statFile(client, pool, agent, name)
          return {agent, modified, name, sha256, size, state: 'ok'}
        } catch (error) {
          const cause = (error as TransferError).cause ?? error
          const code = ZtError.is(cause) ? cause.code : ''
          return {agent, name, reason: (cause as Error).message, state: code === 'ZT_ERR_FILE_UNAVAILABLE' ? 'unreadable' : code.startsWith('ZT_ERR_APP_') ? 'refused' : 'offline'}
        }
      })))
    }

    return listings
  } finally {
    pool.destroy()
  }
}

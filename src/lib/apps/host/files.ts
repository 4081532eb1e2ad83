// The file app on the agent: `stat` answers a published file's size and SHA-256; `get` sends its bytes
// from the requested offset on (a range request: a resumed transfer gets only the rest) as DATA frames,
// at the pace the stream takes them. A file that changes while it is sent ends the session with an ERROR.
import {createReadStream} from 'node:fs'

import type {FileReady} from '../messages.js'
import {FrameType} from '../wire.js'
import type {FileFacts} from './file-catalog.js'
import {AppError, type AppRunner} from './session.js'

const READ_CHUNK_BYTES = 256 * 1024

export const runFile: AppRunner<'file'> = async (channel, open, _session, context) => {
  const {agent} = context
  const file = context.state().publishedFiles().find((candidate) => candidate.name === open.name)
  if (!file) throw new AppError('ZT_ERR_FILE_NOT_FOUND', `no file "${open.name}" is published on ${agent}`, 'see the published files with `ztctl file list`')
  let facts: FileFacts
  try {
    facts = await context.files.facts(file.path)
  } catch (error) {
    throw new AppError('ZT_ERR_FILE_UNAVAILABLE', `${agent} cannot read "${open.name}" (${file.path}): ${(error as Error).message}`, 'the file must exist and be readable on that host; publish it again once it is')
  }

  const offset = open.offset ?? 0
  const ready: FileReady = {modified: new Date(facts.mtimeMs).toISOString(), name: file.name, offset, sha256: facts.sha256, size: facts.size}
  if (open.op === 'stat') {
    channel.send(FrameType.Ready, ready)
    // `file list` asks every file: at debug level, so listings do not flood the log.
    return {file: file.name, op: 'stat', quiet: true}
  }

  if (offset > facts.size) {
    throw new AppError('ZT_ERR_FILE_RANGE', `offset ${offset} is past the end of "${file.name}" (${facts.size} bytes)`, 'delete the partial download and fetch again')
  }

  channel.send(FrameType.Ready, ready)
  context.started({file: file.name, offset, size: facts.size})
  // Nothing is expected from the client now: anything it sends is a protocol error that ends the transfer.
  void (async () => {
    for await (const frame of channel.frames()) throw new AppError('ZT_ERR_APP_PROTOCOL', `unexpected frame ${frame.type} during a file transfer`)
  })().catch(() => channel.destroy())
  let sent = 0
  if (offset < facts.size) {
    for await (const chunk of createReadStream(file.path, {end: facts.size - 1, highWaterMark: READ_CHUNK_BYTES, start: offset}) as AsyncIterable<Buffer>) {
      if (channel.stream.destroyed) break
      sent += chunk.length
      context.files.countSent(file.name, chunk.length)
      if (!channel.send(FrameType.Data, chunk)) await channel.drained()
    }
  }

  const outcome = {bytes: sent, complete: offset + sent === facts.size, file: file.name, offset}
  if (outcome.complete && !(await context.files.unchanged(file.path, facts))) {
    throw new AppError('ZT_ERR_FILE_CHANGED', `"${file.name}" changed on ${agent} while it was sent`, 'fetch it again (the partial download is discarded by the SHA-256 check)')
  }

  return outcome
}

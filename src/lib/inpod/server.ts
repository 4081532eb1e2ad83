// The agent's end of the CNI protocol: a Unix stream socket that `ztctl redirect` connects to. Each
// connection gets a hello, then its requests are handled one at a time, in order, each answered with
// exactly one ack. Garbage gets an ack carrying the error and the connection is closed; nothing a
// client sends can crash the agent. On start, the state directory (the "CNI cache" written by
// `ztctl redirect add`) is loaded as the first snapshot, so a restarted agent re-creates every
// workload's listeners at once.
import {mkdir, readdir, readFile, rm} from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'

import {ExitCode, ZtError, describeSystemError} from '../errors.js'
import {type InpodAck, type InpodAdd, InpodLineParser, type InpodRequest, encodeInpodMessage, INPOD_PROTOCOL_VERSION, parseInpodMessage} from './protocol.js'
import type {WorkloadManager} from './workloads.js'

const MAX_CLIENTS = 64
const IDLE_TIMEOUT_MS = 60_000
const MAX_STATE_FILE_BYTES = 256 * 1024

export interface InpodServerOptions {
  socketPath: string
  workloads: WorkloadManager
  /** called after every change (add/delete/snapshot), e.g. to publish workloads */
  onChange?: () => void
  onError?: (message: string, fields?: Record<string, unknown>) => void
}

export class InpodServer {
  private readonly server: net.Server
  private readonly clients = new Set<net.Socket>()

  constructor(private readonly options: InpodServerOptions) {
    this.server = net.createServer((socket) => this.onClient(socket))
    this.server.maxConnections = MAX_CLIENTS
  }

  async listen(): Promise<void> {
    const {socketPath} = this.options
    await mkdir(path.dirname(socketPath), {recursive: true})
    // A stale socket file from a previous agent would make bind fail with EADDRINUSE; if an agent is
    // really listening there, connecting succeeds and we refuse instead of stealing its socket.
    if (await socketAnswers(socketPath)) {
      throw new ZtError('ZT_ERR_LISTEN', `another agent already listens on ${socketPath}`, {exit: ExitCode.conflict, suggestion: 'Stop it first, or pick another --inpod-socket.'})
    }

    await rm(socketPath, {force: true})
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(socketPath, () => {
        this.server.off('error', reject)
        resolve()
      })
    }).catch((error: unknown) => {
      throw new ZtError('ZT_ERR_LISTEN', `cannot listen on ${socketPath}: ${describeSystemError(error)}`, {cause: error, exit: ExitCode.conflict})
    })
  }

  close(): void {
    this.server.close()
    for (const client of this.clients) client.destroy()
  }

  /** Apply one request; the ack says whether it worked. Never throws. */
  async handle(request: InpodRequest): Promise<InpodAck> {
    const {workloads} = this.options
    try {
      switch (request.type) {
        case 'add': {
          await workloads.add(request)
          return {type: 'ack', uid: request.uid}
        }

        case 'delete': {
          workloads.delete(request.uid)
          return {type: 'ack', uid: request.uid}
        }

        case 'snapshot': {
          const errors = await workloads.snapshot(request.workloads)
          const failed = Object.entries(errors)
          return failed.length === 0 ? {type: 'ack'} : {type: 'ack', error: failed.map(([uid, error]) => `${uid}: ${error}`).join('; ')}
        }

        default: {
          return {type: 'ack', error: 'unknown request'}
        }
      }
    } catch (error) {
      return {type: 'ack', uid: 'uid' in request ? request.uid : undefined, error: (error as Error).message}
    } finally {
      this.options.onChange?.()
    }
  }

  private onClient(socket: net.Socket): void {
    this.clients.add(socket)
    socket.once('close', () => this.clients.delete(socket))
    socket.on('error', () => socket.destroy())
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy())
    socket.write(encodeInpodMessage({type: 'hello', version: INPOD_PROTOCOL_VERSION}))
    const parser = new InpodLineParser()
    // Requests are handled strictly in order: the next waits for the previous ack.
    let queue = Promise.resolve()
    socket.on('data', (chunk: Buffer) => {
      let messages
      try {
        messages = parser.push(chunk)
      } catch (error) {
        this.options.onError?.('closing a CNI connection after a protocol error', {error: (error as Error).message})
        socket.end(encodeInpodMessage({type: 'ack', error: (error as Error).message}))
        socket.pause()
        return
      }

      for (const message of messages) {
        if (message.type !== 'add' && message.type !== 'delete' && message.type !== 'snapshot') {
          socket.end(encodeInpodMessage({type: 'ack', error: `unexpected message "${message.type}" from a client`}))
          socket.pause()
          return
        }

        queue = queue.then(async () => {
          const ack = await this.handle(message)
          if (!socket.destroyed) socket.write(encodeInpodMessage(ack))
        })
      }
    })
  }
}

async function socketAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socketPath)
    const timer = setTimeout(() => finish(false), 1000)
    timer.unref()
    const finish = (answered: boolean): void => {
      clearTimeout(timer)
      probe.destroy()
      resolve(answered)
    }

    probe.once('connect', () => finish(true))
    probe.once('error', () => finish(false))
  })
}

/**
 * The add messages of the state directory: `<uid>.json` files written by `ztctl redirect add`, each
 * holding the add message either at the top level or under `add` (next to the saved rules). Unreadable
 * or invalid files are reported, never fatal.
 */
export async function loadStateDir(dir: string): Promise<{adds: InpodAdd[]; problems: string[]}> {
  let names: string[]
  try {
    names = (await readdir(dir)).filter((name) => name.endsWith('.json')).sort()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {adds: [], problems: []}
    throw error
  }

  const adds: InpodAdd[] = []
  const problems: string[] = []
  for (const name of names) {
    try {
      const text = await readFile(path.join(dir, name), 'utf8')
      if (text.length > MAX_STATE_FILE_BYTES) throw new Error('file too large')
      const value = JSON.parse(text) as Record<string, unknown>
      const candidate = value.type === 'add' ? value : (value.add ?? value.message)
      const message = parseInpodMessage({type: 'add', ...(candidate as Record<string, unknown>)})
      if (message.type === 'add') adds.push(message)
    } catch (error) {
      problems.push(`${name}: ${(error as Error).message}`)
    }
  }

  return {adds, problems}
}

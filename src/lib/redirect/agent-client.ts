// The client side of the CNI ↔ agent protocol (src/lib/inpod/protocol.ts): connect to the agent's Unix
// socket, wait for its hello, then one request at a time, each answered by one ack. Garbage from the
// agent, a wrong version, a closed socket or silence past the deadline become ZtErrors; nothing here
// can crash the process or wait forever.
import net from 'node:net'

import {ExitCode, ZtError} from '../errors.js'
import {
  encodeInpodMessage, type InpodAck, InpodLineParser, type InpodMessage, InpodProtocolError, INPOD_PROTOCOL_VERSION,
  type InpodRequest,
} from '../inpod/protocol.js'

export const DEFAULT_AGENT_TIMEOUT_MS = 5000
/** Messages the agent may send that nobody has asked for yet; more is a protocol violation. */
const MAX_QUEUED_MESSAGES = 16

interface Waiter {
  resolve(message: InpodMessage): void
  reject(error: Error): void
}

export class InpodClient {
  private readonly parser = new InpodLineParser()
  private readonly queue: InpodMessage[] = []
  private waiter: Waiter | undefined
  private failure: Error | undefined

  private constructor(private readonly socket: net.Socket, private readonly socketPath: string, private readonly timeoutMs: number) {
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const message of this.parser.push(chunk)) this.deliver(message)
      } catch (error) {
        this.fail(error as Error)
      }
    })
    socket.on('error', (error) => this.fail(unreachable(socketPath, error)))
    socket.on('close', () => this.fail(new InpodProtocolError(`the agent at ${socketPath} closed the connection`)))
  }

  /** Connect and wait for the agent's hello (version 1). */
  static async connect(socketPath: string, options: {timeoutMs?: number} = {}): Promise<InpodClient> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_AGENT_TIMEOUT_MS
    const socket = net.connect({path: socketPath})
    const client = new InpodClient(socket, socketPath, timeoutMs)
    try {
      const hello = await client.next('hello')
      if (hello.type !== 'hello') throw new InpodProtocolError(`the agent sent ${hello.type} before hello`)
      if (hello.version !== INPOD_PROTOCOL_VERSION) throw new InpodProtocolError(`the agent speaks protocol version ${hello.version}, this ztctl speaks ${INPOD_PROTOCOL_VERSION}`)
      return client
    } catch (error) {
      client.close()
      throw error
    }
  }

  /** Send one request and wait for its ack (an ack carrying an error is returned, not thrown). */
  async request(message: InpodRequest): Promise<InpodAck> {
    if (this.failure) throw this.failure
    this.socket.write(encodeInpodMessage(message))
    const reply = await this.next(`the ack of ${message.type}`)
    if (reply.type !== 'ack') throw new InpodProtocolError(`expected an ack, the agent sent ${reply.type}`)
    if ('uid' in message && reply.uid !== undefined && reply.uid !== message.uid) {
      throw new InpodProtocolError(`the agent acknowledged uid ${reply.uid}, not ${message.uid}`)
    }

    return reply
  }

  close(): void {
    this.socket.destroy()
  }

  private deliver(message: InpodMessage): void {
    if (this.waiter) {
      const {resolve} = this.waiter
      this.waiter = undefined
      resolve(message)
      return
    }

    if (this.queue.length >= MAX_QUEUED_MESSAGES) {
      this.fail(new InpodProtocolError('the agent sent messages nobody asked for'))
      return
    }

    this.queue.push(message)
  }

  private fail(error: Error): void {
    if (this.failure) return
    this.failure = error
    this.socket.destroy()
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.reject(error)
  }

  private next(what: string): Promise<InpodMessage> {
    const queued = this.queue.shift()
    if (queued) return Promise.resolve(queued)
    if (this.failure) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new ZtError('ZT_ERR_AGENT_TIMEOUT', `the agent at ${this.socketPath} did not send ${what} within ${this.timeoutMs} ms`, {
          exit: ExitCode.unreachable, suggestion: 'check the agent\'s log; is it busy or stuck?',
        }))
      }, this.timeoutMs)
      timer.unref()
      this.waiter = {
        reject(error) {
          clearTimeout(timer)
          reject(error)
        },
        resolve(message) {
          clearTimeout(timer)
          resolve(message)
        },
      }
    })
  }
}

function unreachable(socketPath: string, error: NodeJS.ErrnoException): ZtError {
  const reason = error.code === 'ENOENT' ? 'no socket there' : error.code === 'ECONNREFUSED' ? 'nobody listens on it' : error.message
  return new ZtError('ZT_ERR_AGENT_UNREACHABLE', `the node agent is not reachable at ${socketPath} (${reason})`, {
    cause: error, details: {errno: error.code}, exit: ExitCode.unreachable,
    suggestion: 'start it with `ztctl agent run --inpod-socket PATH` (same --state-dir); it picks cached workloads up on start',
  })
}

export interface AgentNotice {
  reachable: boolean
  /** the agent's ack (error set when it refused) */
  ack?: InpodAck
  /** why the agent could not be told (not reachable, protocol error) */
  problem?: {code: string; message: string}
}

/** Connect, send one request, close: never throws (the caller decides how bad each outcome is). */
export async function notifyAgent(socketPath: string, message: InpodRequest, options: {timeoutMs?: number} = {}): Promise<AgentNotice> {
  let client: InpodClient | undefined
  try {
    client = await InpodClient.connect(socketPath, options)
    return {ack: await client.request(message), reachable: true}
  } catch (error) {
    const code = ZtError.is(error) ? error.code : 'ZT_ERR_AGENT_UNREACHABLE'
    return {problem: {code, message: (error as Error).message}, reachable: code !== 'ZT_ERR_AGENT_UNREACHABLE'}
  } finally {
    client?.close()
  }
}

/** Whether an agent answers on the socket with a valid hello. */
export async function probeAgent(socketPath: string, options: {timeoutMs?: number} = {}): Promise<{ok: boolean; message: string}> {
  try {
    const client = await InpodClient.connect(socketPath, options)
    client.close()
    return {message: `agent answers on ${socketPath} (protocol v${INPOD_PROTOCOL_VERSION})`, ok: true}
  } catch (error) {
    return {message: (error as Error).message, ok: false}
  }
}

// A minimal real agent side of the in-pod protocol for tests that run before/without the full agent:
// a Unix socket server that sends hello, records every request and acks it (optionally with an error),
// or misbehaves on purpose (`behaviour`). It is the protocol under test, not a stand-in for our client.
import {mkdtemp, rm} from 'node:fs/promises'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {encodeInpodMessage, InpodLineParser, type InpodRequest} from '../../src/lib/inpod/protocol.js'

export type ServerBehaviour =
  | {kind: 'normal'; ackError?: string}
  | {kind: 'raw-hello'; bytes: string} // sends these bytes instead of the hello
  | {kind: 'raw-ack'; bytes: string} // proper hello, then these bytes instead of an ack
  | {kind: 'silent'}

export interface TestAgentServer {
  socketPath: string
  requests: InpodRequest[]
  close(): Promise<void>
}

interface TestContextLike {
  after(fn: () => Promise<void> | void): void
}

export async function startAgentServer(t: TestContextLike, behaviour: ServerBehaviour = {kind: 'normal'}): Promise<TestAgentServer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ztctl-inpod-'))
  const socketPath = path.join(dir, 'inpod.sock')
  const requests: InpodRequest[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    if (behaviour.kind === 'silent') return
    socket.write(behaviour.kind === 'raw-hello' ? behaviour.bytes : encodeInpodMessage({type: 'hello', version: 1}))
    const parser = new InpodLineParser()
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const message of parser.push(chunk)) {
          if (message.type !== 'add' && message.type !== 'delete' && message.type !== 'snapshot') throw new Error(`unexpected ${message.type}`)
          requests.push(message)
          if (behaviour.kind === 'raw-ack') socket.write(behaviour.bytes)
          else socket.write(encodeInpodMessage({type: 'ack', ...('uid' in message ? {uid: message.uid} : {}), ...(behaviour.kind === 'normal' && behaviour.ackError ? {error: behaviour.ackError} : {})}))
        }
      } catch (error) {
        socket.end(encodeInpodMessage({error: (error as Error).message, type: 'ack'}))
      }
    })
  })
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socketPath, resolve))
  const close = async (): Promise<void> => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await rm(dir, {force: true, recursive: true})
  }

  t.after(close)
  return {close, requests, socketPath}
}

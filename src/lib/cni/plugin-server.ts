// The CNI agent's end of the plugin socket (`<run dir>/cni.sock` on the host): one request per connection,
// read to the end of the stream (bounded in bytes and time), one reply line. Garbage gets an error reply;
// nothing the plugin (or anything else on the node that can open the socket) sends can crash the agent.
import {chmod, mkdir, rm} from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'

import {describeSystemError, ExitCode, ZtError} from '../errors.js'
import {listening} from '../util/listening.js'
import {CniErrorCode, CniRequestError, encodePluginReply, MAX_PLUGIN_REQUEST_BYTES, parsePluginRequest, type CniPluginRequest} from './plugin-protocol.js'

const MAX_CLIENTS = 32
/** The plugin waits 25 s for the reply; a request must arrive within this. */
const READ_TIMEOUT_MS = 10_000

export type PluginHandler = (request: CniPluginRequest) => Promise<{code: number; message: string} | undefined>

export interface PluginServer {
  close(): Promise<void>
}

export async function servePluginSocket(socketPath: string, handle: PluginHandler, onError: (message: string, fields: Record<string, unknown>) => void): Promise<PluginServer> {
  const server = net.createServer({allowHalfOpen: true}, (socket) => {
    const chunks: Buffer[] = []
    let bytes = 0
    let done = false
    const reply = (error?: {code: number; message: string}): void => {
      if (done) return
      done = true
      socket.end(encodePluginReply(error))
    }

    socket.setTimeout(READ_TIMEOUT_MS, () => socket.destroy())
    socket.on('error', () => socket.destroy())
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes > MAX_PLUGIN_REQUEST_BYTES) {
        reply({code: CniErrorCode.decode, message: `the request exceeds ${MAX_PLUGIN_REQUEST_BYTES} bytes`})
        socket.pause()
        return
      }

      chunks.push(chunk)
    })
    socket.on('end', () => {
      if (done) return
      socket.setTimeout(0)
      let request: CniPluginRequest
      try {
        request = parsePluginRequest(Buffer.concat(chunks))
      } catch (error) {
        onError('refusing a CNI plugin request', {error: (error as Error).message})
        reply({code: error instanceof CniRequestError ? error.cniCode : CniErrorCode.decode, message: (error as Error).message})
        return
      }

      handle(request).then(reply, (error: unknown) => reply({code: CniErrorCode.tryAgainLater, message: (error as Error).message}))
    })
  })
  server.maxConnections = MAX_CLIENTS
  await mkdir(path.dirname(socketPath), {recursive: true})
  // A previous agent's socket file (the pod restarted): nobody listens there, or we would not run twice.
  await rm(socketPath, {force: true})
  await listening(server, (done) => server.listen(socketPath, done)).catch((error: unknown) => {
    throw new ZtError('ZT_ERR_LISTEN', `cannot listen on ${socketPath}: ${describeSystemError(error)}`, {cause: error, exit: ExitCode.conflict})
  })
  // The container runtime runs the plugin as root; nobody else on the node has business on this socket.
  await chmod(socketPath, 0o600)
  return {
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await rm(socketPath, {force: true})
    },
  }
}

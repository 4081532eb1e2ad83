// A TCP relay in front of an agent's HBONE port (the agent advertises the relay's address), to break
// transfers on purpose: cut the first connection once it carried N bytes towards the client, and/or hold
// the flow from the agent to a rate. It relays TLS bytes it cannot read; it only counts and cuts.
import {createServer, type Socket, connect as netConnect} from 'node:net'
import type {TestContext} from 'node:test'

export interface CutProxy {
  /** connections accepted so far */
  readonly connections: number
  /** connections cut on purpose */
  readonly cuts: number
  /** cut the next connection once it carried this many bytes towards the client (undefined: never) */
  cutAfter?: number
  /** bytes per second from the agent to the client (undefined: as fast as it comes) */
  rate?: number
  readonly port: number
  /** where to relay to (set once the agent is up) */
  target?: {host: string; port: number}
}

export async function cutProxy(t: TestContext): Promise<CutProxy> {
  const sockets = new Set<Socket>()
  const state: {-readonly [K in keyof CutProxy]: CutProxy[K]} = {connections: 0, cuts: 0, port: 0}
  const server = createServer((client) => {
    state.connections++
    sockets.add(client)
    client.once('close', () => sockets.delete(client))
    if (!state.target) return void client.destroy()
    const upstream = netConnect(state.target)
    sockets.add(upstream)
    upstream.once('close', () => sockets.delete(upstream))
    const cutAt = state.cutAfter
    state.cutAfter = undefined
    const startedAt = Date.now()
    let towardsClient = 0
    upstream.on('data', (chunk: Buffer) => {
      towardsClient += chunk.length
      client.write(chunk)
      if (cutAt !== undefined && towardsClient >= cutAt) {
        state.cuts++
        client.resetAndDestroy()
        upstream.resetAndDestroy()
        return
      }

      const ahead = state.rate ? (towardsClient / state.rate) * 1000 - (Date.now() - startedAt) : 0
      if (ahead > 5) {
        upstream.pause()
        setTimeout(() => upstream.resume(), ahead).unref()
      }
    })
    client.pipe(upstream)
    for (const socket of [client, upstream]) {
      socket.on('error', () => {
        client.destroy()
        upstream.destroy()
      })
    }

    upstream.once('end', () => client.end())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => {
    for (const socket of sockets) socket.destroy()
    server.close()
  })
  state.port = (server.address() as {port: number}).port
  return state
}

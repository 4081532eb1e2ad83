// The controller's plain-HTTP probe listener (`--health HOST:PORT`, Kubernetes readiness and liveness):
// GET /ready is 200 once the controller serves (a standby replica serves too), GET /healthz is 200 while
// the process answers. Nothing else, no bodies read, short timeouts: it is open to anyone on the pod network.
import http from 'node:http'
import type {AddressInfo} from 'node:net'

import type {HostPort} from '../proxy/address.js'
import {listenOn} from './server.js'

export interface HealthServer {
  readonly address: {host: string; port: number}
  close(): Promise<void>
}

export interface HealthState {
  /** undefined when ready, else why not */
  notReady(): string | undefined
  /** extra facts for /ready's body (the leader, the store) */
  facts(): Record<string, unknown>
}

export async function startHealthServer(listen: HostPort, state: HealthState): Promise<HealthServer> {
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0]
    const reply = (status: number, body: Record<string, unknown>): void => {
      const text = JSON.stringify(body) + '\n'
      response.writeHead(status, {'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), 'content-type': 'application/json'})
      response.end(request.method === 'HEAD' ? undefined : text)
    }

    if (request.method !== 'GET' && request.method !== 'HEAD') reply(405, {error: 'only GET'})
    else if (path === '/healthz') reply(200, {status: 'ok'})
    else if (path === '/ready') {
      const why = state.notReady()
      reply(why === undefined ? 200 : 503, {...state.facts(), ready: why === undefined, ...(why === undefined ? {} : {reason: why})})
    } else reply(404, {error: 'not found: /ready and /healthz only'})
  })
  server.headersTimeout = 5000
  server.requestTimeout = 5000
  server.keepAliveTimeout = 5000
  server.maxHeadersCount = 32
  server.maxConnections = 256
  await listenOn(server, listen, '--health')
  const bound = server.address() as AddressInfo
  return {
    address: {host: bound.address, port: bound.port},
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}

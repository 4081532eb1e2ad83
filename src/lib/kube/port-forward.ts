// A local port that leads to a pod's port (client-node PortForward): every connection accepted on
// 127.0.0.1:0 is one WebSocket to the API server's pods/portforward, closed with its socket (or it keeps
// the process alive). What `kubectl port-forward` does, for the CLI's own requests.
import net from 'node:net'

import type {KubeClients} from './client.js'

export interface ForwardedPort {
  /** the local port on 127.0.0.1 */
  port: number
  close(): void
}

export async function forwardPodPort(clients: Pick<KubeClients, 'k8s' | 'kc'>, namespace: string, pod: string, podPort: number): Promise<ForwardedPort> {
  const forward = new clients.k8s.PortForward(clients.kc)
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    forward.portForward(namespace, pod, [podPort], socket, null, socket).then((ws) => {
      const close = (): void => (typeof ws === 'function' ? ws() : ws)?.terminate()
      if (socket.destroyed) close()
      else socket.once('close', close)
    }, () => socket.destroy())
    socket.once('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  return {
    close() {
      server.close()
      for (const socket of sockets) socket.destroy()
    },
    port: (server.address() as net.AddressInfo).port,
  }
}

// What certificate a TLS server presents right now: one mutual-TLS handshake as an HBONE peer dials it
// (ALPN h2, the client's mesh certificate), the served leaf read, the socket closed.
import tls from 'node:tls'

import type {IdentityFile} from '../../src/lib/identity/file.js'

/** The serial (lower-case hex) and expiry of the certificate ADDRESS serves over TLS. */
export function servedCertificate(address: string, client: IdentityFile): Promise<{notAfter: number; serial: string}> {
  const colon = address.lastIndexOf(':')
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      ALPNProtocols: ['h2'], ca: client.ca, cert: client.cert, checkServerIdentity: () => undefined, host: address.slice(0, colon), key: client.key, port: Number(address.slice(colon + 1)),
    }, () => {
      const peer = socket.getPeerCertificate()
      socket.destroy()
      resolve({notAfter: Date.parse(peer.valid_to), serial: peer.serialNumber.toLowerCase()})
    })
    socket.setTimeout(5000, () => socket.destroy(new Error(`no TLS handshake with ${address} in 5 s`)))
    socket.once('error', reject)
  })
}

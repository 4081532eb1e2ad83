// TLS parameters of HBONE (ztunnel's): TLS 1.3 only, AES-GCM suites, ALPN h2, mutual authentication
// against the mesh CA, no SNI, no session resumption. The credential store swaps the secure context on
// renewal: new handshakes use the new certificate, established connections are not touched.
import {constants as cryptoConstants} from 'node:crypto'
import {EventEmitter} from 'node:events'
import {createSecureContext, type PeerCertificate, type SecureContext, type SecureContextOptions, type TLSSocket} from 'node:tls'

import type {IdentityFile} from '../../identity/file.js'
import {certInfo, type CertInfo, spiffeFromSubjectAltName, splitPem} from '../../pki/cert-info.js'

/** node:tls takes TLS 1.3 suites in `ciphers` (there is no `ciphersuites` option). */
export const HBONE_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384'
export const HBONE_ALPN = ['h2']

export interface PeerIdentity {
  serial?: string
  spiffe?: string
}

/** The identity and trust material, hot-swappable. Emits `update` after a renewal. */
export class Credentials extends EventEmitter {
  private context!: SecureContext
  private current!: IdentityFile
  private leaf!: CertInfo

  constructor(identity: IdentityFile) {
    super()
    this.update(identity)
  }

  get identity(): IdentityFile {
    return this.current
  }

  get certificate(): CertInfo {
    return this.leaf
  }

  /** The secure context for new client handshakes. */
  get secureContext(): SecureContext {
    return this.context
  }

  /** Options for a TLS server (also accepted by `server.setSecureContext`). */
  serverOptions(): SecureContextOptions & {ALPNProtocols: string[]; requestCert: true; rejectUnauthorized: true} {
    return {...this.contextOptions(), ALPNProtocols: HBONE_ALPN, rejectUnauthorized: true, requestCert: true}
  }

  /** Swap to IDENTITY; throws (and keeps the current one) when its certificate or key cannot be loaded. */
  update(identity: IdentityFile): void {
    const leaf = certInfo(identity.cert)
    const context = createSecureContext(this.contextOptions(identity))
    this.current = identity
    this.leaf = leaf
    this.context = context
    this.emit('update', identity)
  }

  private contextOptions(identity = this.current): SecureContextOptions {
    return {
      ca: splitPem(identity.ca),
      cert: identity.cert,
      ciphers: HBONE_CIPHERS,
      key: identity.key,
      maxVersion: 'TLSv1.3',
      minVersion: 'TLSv1.3',
      // No stateless session tickets: every HBONE connection authenticates fully, as ztunnel's does.
      secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
    }
  }
}

export function peerIdentity(socket: TLSSocket): PeerIdentity {
  const cert = socket.getPeerCertificate() as PeerCertificate | Record<string, never>
  if (!cert || !('serialNumber' in cert)) return {}
  return {serial: cert.serialNumber?.toUpperCase(), spiffe: spiffeFromSubjectAltName(cert.subjectaltname)}
}

/**
 * The client's identity pin: the server certificate (already chained to the mesh CA by OpenSSL) must
 * carry exactly the expected SPIFFE ID and must not be revoked.
 */
export function pinServerIdentity(expectedSpiffe: string, isRevoked: (serial: string) => boolean) {
  return (_host: string, cert: PeerCertificate): Error | undefined =>
    checkPinnedPeer(expectedSpiffe, {serial: cert.serialNumber?.toUpperCase(), spiffe: spiffeFromSubjectAltName(cert.subjectaltname)}, isRevoked)
}

/** The pin itself, for either data path: an Error (code ZT_ERR_PEER_IDENTITY / _REVOKED) or undefined. */
export function checkPinnedPeer(expectedSpiffe: string, peer: PeerIdentity, isRevoked: (serial: string) => boolean): Error | undefined {
  if (peer.spiffe !== expectedSpiffe) {
    return Object.assign(new Error(`the server presented identity ${peer.spiffe ?? '(none)'}, expected ${expectedSpiffe}`), {code: 'ZT_ERR_PEER_IDENTITY'})
  }

  if (peer.serial && isRevoked(peer.serial)) {
    return Object.assign(new Error(`the server certificate ${peer.serial} of ${peer.spiffe} is revoked`), {code: 'ZT_ERR_PEER_REVOKED'})
  }

  return undefined
}

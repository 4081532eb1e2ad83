// Certificate renewal by the holder: a fresh key and CSR (the key never leaves the host), POST
// /v1/renew authenticated with the current certificate, which keeps serving until the new one arrives.
import {EventEmitter} from 'node:events'

import {type IdentityFile, writeIdentityFile} from '../identity/file.js'
import {certInfo} from '../pki/cert-info.js'
import {ControllerClient} from './controller-client.js'

/** pki.signCsr back-dates notBefore by a minute for clock skew; that minute is not part of the TTL. */
const BACKDATE_MS = 60_000

/** Milliseconds until the certificate reaches half of its requested lifetime (negative when past it). */
export function msUntilRenewal(identity: Pick<IdentityFile, 'cert'>, now = Date.now()): number {
  const {notAfter, notBefore} = certInfo(identity.cert)
  const lifetime = notAfter.getTime() - notBefore.getTime()
  const ttl = lifetime > BACKDATE_MS ? lifetime - BACKDATE_MS : lifetime
  return notAfter.getTime() - ttl / 2 - now
}

export async function renewIdentity(identity: IdentityFile, options: {timeoutMs?: number} = {}): Promise<IdentityFile> {
  // Loaded on demand: the X.509 generator is heavy and renewal is rare.
  const {createKeyAndCsr} = await import('../pki/pki.js')
  const {csrPem, keyPem} = await createKeyAndCsr(identity.name)
  const client = ControllerClient.fromIdentity(identity, options.timeoutMs)
  try {
    const {ca, cert} = await client.request<{ca: string; cert: string}>('POST', '/v1/renew', {csr: csrPem})
    return {...identity, ca, cert, key: keyPem}
  } finally {
    client.close()
  }
}

export interface CertificateRenewerOptions {
  /** rewrite this identity file (atomically, 0600) after each renewal when it can be written */
  file?: string
  maxBackoffMs?: number
  minBackoffMs?: number
  /** the renewal itself; default renewIdentity */
  renew?: (identity: IdentityFile) => Promise<IdentityFile>
}

/** Where the current certificate lives: in the identity file, or only in this process (the file cannot be written). */
export type CertificateStorage = 'file' | 'memory'

/**
 * Keeps an identity's certificate fresh: renews at half-life, retries failures with bounded
 * exponential backoff and jitter, and keeps `identity` at the old certificate until a new one arrives.
 * A renewed certificate the file cannot take (a read-only Secret volume) is kept in memory: the
 * process serves it and renews from it; the file is tried again at the next renewal.
 * Events: 'renewed' (identity: IdentityFile), 'error' (error: unknown, retryInMs: number), 'memory'
 * (file: string, error: unknown) the first time the file cannot be written; an 'error' without
 * listeners is dropped rather than thrown, because a failed renewal is retried anyway.
 */
export class CertificateRenewer extends EventEmitter {
  private current: IdentityFile
  private failures = 0
  /** bumped by adopt(): a renewal started from an earlier certificate is dropped when it lands */
  private generation = 0
  private saidMemory = false
  private where: CertificateStorage
  private stopped = true
  private timer?: NodeJS.Timeout
  private readonly maxBackoffMs: number
  private readonly minBackoffMs: number

  constructor(identity: IdentityFile, private readonly options: CertificateRenewerOptions = {}) {
    super()
    this.current = identity
    this.minBackoffMs = options.minBackoffMs ?? 1000
    this.maxBackoffMs = options.maxBackoffMs ?? 60_000
    this.where = options.file ? 'file' : 'memory'
  }

  /** Whether the current certificate is the one in the identity file or one kept in memory only. */
  get storage(): CertificateStorage {
    return this.where
  }

  /** The identity to use right now. */
  get identity(): IdentityFile {
    return this.current
  }

  start(): this {
    if (!this.stopped) return this
    this.stopped = false
    this.schedule(Math.max(0, msUntilRenewal(this.current)))
    return this
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  /**
   * Take IDENTITY, read from the identity file by someone else's hand (the kubelet updating a Secret
   * volume), as the current certificate: the next renewal is due at its half-life, and a renewal in
   * flight from the previous certificate is dropped when it lands.
   */
  adopt(identity: IdentityFile): void {
    this.current = identity
    this.generation++
    this.failures = 0
    this.where = 'file'
    this.schedule(Math.max(0, msUntilRenewal(identity)))
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return
    clearTimeout(this.timer)
    // setTimeout holds at most ~24.8 days; a longer wait is re-armed when it fires.
    this.timer = setTimeout(() => this.attempt(), Math.min(delayMs, 2 ** 31 - 1))
    this.timer.unref()
  }

  /** Writes NEXT to the file when there is one and it takes it; else the renewal stays in memory. */
  private async store(next: IdentityFile): Promise<void> {
    const {file} = this.options
    if (!file) return
    try {
      await writeIdentityFile(file, next)
      this.where = 'file'
    } catch (error) {
      this.where = 'memory'
      if (this.saidMemory) return
      this.saidMemory = true
      this.emit('memory', file, error)
    }
  }

  private attempt(): void {
    if (msUntilRenewal(this.current) > 1000) {
      this.schedule(msUntilRenewal(this.current))
      return
    }

    const renew = this.options.renew ?? renewIdentity
    const {generation} = this
    const superseded = (): boolean => this.stopped || generation !== this.generation
    renew(this.current)
      .then(async (next) => {
        if (superseded()) return
        await this.store(next)
        if (superseded()) return
        this.current = next
        this.failures = 0
        this.emit('renewed', next)
        this.schedule(Math.max(0, msUntilRenewal(next)))
      })
      .catch((error: unknown) => {
        if (superseded()) return
        this.failures++
        const base = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** Math.min(this.failures - 1, 20))
        const retryInMs = Math.round(base / 2 + Math.random() * (base / 2))
        if (this.listenerCount('error') > 0) this.emit('error', error, retryInMs)
        this.schedule(retryInMs)
      })
  }
}

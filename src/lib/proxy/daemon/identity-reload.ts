// A daemon's identity file changed under it: in a pod the file is a Secret volume the kubelet updates by
// swapping the directory's `..data` symlink (the file's own path never changes), when the controller
// re-issues the Secret. The daemon watches the file's directory (fs.watch, plus a slow poll for the
// events a watch misses) and, when the file holds a different certificate for the same identity, signed
// by the mesh CA it trusts, matching its key and valid now, swaps its TLS credentials: new handshakes present
// the new certificate, live sessions keep theirs. Anything else (half-written, another identity, expired)
// is logged once per content and ignored: the daemon keeps serving what it has.
import {createPrivateKey, X509Certificate} from 'node:crypto'
import {type FSWatcher, watch} from 'node:fs'
import {open} from 'node:fs/promises'
import path from 'node:path'

import {type IdentityFile, parseIdentityFile} from '../../identity/file.js'
import {certInfo, issuedByBundle, splitPem} from '../../pki/cert-info.js'
import {type Serialized, serialized} from '../../util/serialized.js'
import type {Credentials} from '../hbone/tls.js'
import type {Logger} from '../observe/log.js'

const IDENTITY_POLL_MS = 30_000
/** Events come in bursts (the kubelet's swap is several renames): one read after the burst. */
const SETTLE_MS = 200
/** An identity file is a few KiB; anything bigger is not one. */
const MAX_IDENTITY_BYTES = 1024 * 1024

export interface IdentityReloadOptions {
  credentials: Credentials
  file: string
  logger: Logger
  /** after each swap (the renewer takes the new certificate as its own) */
  onReload?: (identity: IdentityFile) => void
}

export interface IdentityReload {
  stop(): void
}

/**
 * Start watching; resolves once the file's present text is read, which later reads compare with (start
 * it before the renewer: a renewal kept in memory must not be undone by the older file).
 */
export async function watchIdentityFile(options: IdentityReloadOptions): Promise<IdentityReload> {
  return new IdentityFileWatch(options, await readBounded(options.file).catch(() => undefined))
}

class IdentityFileWatch implements IdentityReload {
  private readonly poll: NodeJS.Timeout
  private settle?: NodeJS.Timeout
  private stopped = false
  private watcher?: FSWatcher

  constructor(private readonly options: IdentityReloadOptions, private lastText: string | undefined) {
    this.ensureWatch()
    this.poll = setInterval(() => {
      this.ensureWatch() // a watch that failed is set up again
      void this.check()
    }, IDENTITY_POLL_MS)
    this.poll.unref()
  }

  /** One read at a time; an event during a read makes one more after it. */
  readonly check: Serialized = serialized(() => this.readOnce(), (error) => {
    this.options.logger.warn({error: (error as Error).message, file: this.options.file}, 'identity file check failed; keeping the current certificate')
  })

  stop(): void {
    this.stopped = true
    this.check.cancel()
    clearInterval(this.poll)
    clearTimeout(this.settle)
    this.watcher?.close()
    this.watcher = undefined
  }

  private ensureWatch(): void {
    if (this.watcher || this.stopped) return
    this.watcher = watchDirectory(this.options.file, () => this.soon(), () => {
      this.watcher?.close()
      this.watcher = undefined
    })
  }

  private async readOnce(): Promise<void> {
    const {credentials, file, logger} = this.options
    const text = await readBounded(file).catch((error: Error) => {
      logger.debug({error: error.message, file}, 'identity file not readable; keeping the current certificate')
      return undefined
    })
    if (text === undefined || text === this.lastText || this.stopped) return
    this.lastText = text
    const next = usableIdentity(text, file, credentials.identity)
    if (typeof next === 'string') logger.warn({file, reason: next}, 'identity file changed but is not usable; keeping the current certificate')
    else if (next) swap(this.options, next)
  }

  private soon(): void {
    clearTimeout(this.settle)
    this.settle = setTimeout(() => void this.check(), SETTLE_MS)
    this.settle.unref()
  }
}

/** Watch FILE's directory: the kubelet renames `..data`, an atomic writer renames a temporary file. */
function watchDirectory(file: string, changed: () => void, lost: () => void): FSWatcher | undefined {
  const base = path.basename(file)
  try {
    const watcher = watch(path.dirname(file), {persistent: false}, (_event, name) => {
      if (!name || name === base || name.startsWith('..')) changed()
    })
    watcher.on('error', lost)
    return watcher
  } catch {
    return undefined // no directory yet: the poll looks again
  }
}

async function readBounded(file: string): Promise<string> {
  // read at most one byte past the bound, so a huge file is never loaded whole
  const handle = await open(file, 'r')
  try {
    const buffer = Buffer.alloc(MAX_IDENTITY_BYTES + 1)
    const {bytesRead} = await handle.read(buffer, 0, buffer.length, 0)
    if (bytesRead > MAX_IDENTITY_BYTES) throw new Error(`over ${MAX_IDENTITY_BYTES} bytes: too large for an identity file`)
    return buffer.toString('utf8', 0, bytesRead)
  } finally {
    await handle.close()
  }
}

/**
 * The identity in TEXT when it is a different certificate CURRENT's holder may serve; undefined when it
 * is the same certificate; else why not, in words.
 */
function usableIdentity(text: string, where: string, current: IdentityFile, now = Date.now()): IdentityFile | string | undefined {
  let next: IdentityFile
  try {
    next = parseIdentityFile(text, where)
  } catch (error) {
    return (error as Error).message
  }

  if (next.cert === current.cert && next.key === current.key) return undefined
  try {
    const leaf = new X509Certificate(splitPem(next.cert)[0] ?? next.cert)
    const info = certInfo(next.cert)
    if (next.name !== current.name || info.spiffe !== current.spiffe) return `it is the identity ${info.spiffe ?? next.name}, not ${current.spiffe}`
    if (info.notBefore.getTime() > now || info.notAfter.getTime() <= now) return `certificate ${info.serial} is not valid now (${info.notBefore.toISOString()} to ${info.notAfter.toISOString()})`
    if (!leaf.checkPrivateKey(createPrivateKey(next.key))) return `the key does not belong to certificate ${info.serial}`
    // The mesh CA the daemon trusts now: a file signed by another CA is not this mesh's (a new CA needs a restart).
    if (!issuedByBundle(next.cert, current.ca)) return `certificate ${info.serial} is not signed by the mesh CA this process trusts (a new CA needs a restart)`
  } catch (error) {
    return `not a usable certificate and key: ${(error as Error).message}`
  }

  // The controller URL is the daemon's (--controller may have replaced the file's).
  return {...next, controller: current.controller}
}

function swap(options: IdentityReloadOptions, next: IdentityFile): void {
  const {credentials, logger} = options
  const previous = credentials.certificate.serial
  try {
    credentials.update(next)
  } catch (error) {
    logger.warn({error: (error as Error).message, file: options.file}, 'identity file changed but its certificate cannot be loaded; keeping the current one')
    return
  }

  options.onReload?.(credentials.identity)
  logger.info({file: options.file, notAfter: credentials.certificate.notAfter.toISOString(), previous, serial: credentials.certificate.serial}, 'identity file reloaded: new connections present its certificate')
}

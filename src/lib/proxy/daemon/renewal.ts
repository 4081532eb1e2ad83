// Certificate renewal for every long-running identity holder (agent, hub, the host pod's agent): one
// CertificateRenewer that hot-swaps each renewed certificate into the process's TLS contexts, writes the
// identity file when it can and else keeps the certificate in memory, logged the same way everywhere.
import {CertificateRenewer} from '../../client/renew.js'
import type {IdentityFile} from '../../identity/file.js'
import type {Credentials} from '../hbone/tls.js'
import type {Logger} from '../observe/log.js'

export interface RenewalOptions {
  /** the identity file to rewrite after each renewal (kept in memory when it cannot be written) */
  file?: string
  renew: (identity: IdentityFile) => Promise<IdentityFile>
}

export function startRenewal(credentials: Credentials, logger: Logger, options: RenewalOptions): CertificateRenewer {
  const renewer = new CertificateRenewer(credentials.identity, {file: options.file, maxBackoffMs: 150_000, minBackoffMs: 500, renew: options.renew})
  renewer.on('renewed', (identity: IdentityFile) => {
    credentials.update(identity)
    logger.info({notAfter: credentials.certificate.notAfter.toISOString(), serial: credentials.certificate.serial, storage: renewer.storage}, 'certificate renewed')
  })
  renewer.on('error', (error: Error, retryInMs: number) => logger.warn({error: error.message, retryInMs}, 'certificate renewal failed; still serving with the current certificate'))
  // Said once: a read-only file (a Secret volume) is expected in a pod, and every later renewal is the same.
  renewer.on('memory', (file: string, error: Error) => logger.warn({error: error.message, file}, 'identity file cannot be written; renewed certificates are kept in memory (a restart reads the file again)'))
  return renewer.start()
}

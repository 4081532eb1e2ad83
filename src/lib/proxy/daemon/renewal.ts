// Keeping a long-running identity holder's certificate (agent, hub, the host pod's agent): one
// CertificateRenewer that hot-swaps each renewed certificate into the process's TLS contexts, writes the
// identity file when it can and else keeps the certificate in memory, logged the same way everywhere;
// and a watch on the identity file that swaps in a certificate someone else put there (the kubelet
// updating a Secret volume), which the renewer then takes as its own.
import {CertificateRenewer, type CertificateStorage} from '../../client/renew.js'
import type {IdentityFile} from '../../identity/file.js'
import type {Credentials} from '../hbone/tls.js'
import type {Logger} from '../observe/log.js'
import {watchIdentityFile} from './identity-reload.js'

export interface RenewalOptions {
  /** the identity file to rewrite after each renewal (kept in memory when it cannot be written) */
  file?: string
  renew: (identity: IdentityFile) => Promise<IdentityFile>
}

function startRenewal(credentials: Credentials, logger: Logger, options: RenewalOptions): CertificateRenewer {
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

export interface IdentityUpkeep {
  /** where the served certificate lives (undefined: nothing renews it) */
  readonly storage?: CertificateStorage
  stop(): void
}

export interface UpkeepOptions {
  /** the identity file: watched for certificates put there from outside, rewritten after each renewal */
  file?: string
  /** renew at half-life with this; undefined: never */
  renew?: (identity: IdentityFile) => Promise<IdentityFile>
}

/** Renewal and identity-file reloads for one daemon; the watch starts first (see watchIdentityFile). */
export async function keepIdentity(credentials: Credentials, logger: Logger, options: UpkeepOptions): Promise<IdentityUpkeep> {
  let renewer: CertificateRenewer | undefined
  const reload = options.file ? await watchIdentityFile({credentials, file: options.file, logger, onReload: (identity) => renewer?.adopt(identity)}) : undefined
  if (options.renew) renewer = startRenewal(credentials, logger, {file: options.file, renew: options.renew})
  return {
    get storage() {
      return renewer?.storage
    },
    stop() {
      renewer?.stop()
      reload?.stop()
    },
  }
}

// The controller's CA: created on first start (EC P-256, key 0600 in the data dir) or imported as an
// intermediate under the user's own root. The files are the source of truth; the store keeps the
// trust domain, so a later start with a different one is caught.
import {readFile} from 'node:fs/promises'
import path from 'node:path'

import {ZtError} from '../errors.js'
import {writeFileAtomic} from '../home/home.js'
import {certInfo, fingerprint, splitPem} from '../pki/cert-info.js'
import {createCA, type KeyPairPem, validateCA} from '../pki/pki.js'

export interface ControllerCA extends KeyPairPem {
  /** PEM bundle agents and clients trust: the CA certificate, then its parents up to the root */
  bundle: string
  /** SHA-256 of the CA certificate, lower hex (the JWT's `caf`) */
  fingerprint: string
}

export interface LoadCAOptions {
  dataDir: string
  /** import this intermediate (PEM, optionally followed by its chain) and key instead of creating one */
  importFrom?: {certFile: string; keyFile: string}
  trustDomain: string
}

const caFiles = (dataDir: string) => ({
  bundle: path.join(dataDir, 'ca-bundle.pem'),
  cert: path.join(dataDir, 'ca.crt'),
  key: path.join(dataDir, 'ca.key'),
})

export async function loadOrCreateCA(options: LoadCAOptions): Promise<ControllerCA & {created: boolean}> {
  const files = caFiles(options.dataDir)
  if (options.importFrom) {
    const ca = await importCA(options.importFrom)
    await saveCA(files, ca)
    return {...ca, created: true}
  }

  const existing = await readOptional(files.cert)
  if (existing !== undefined) {
    const keyPem = await readFile(files.key, 'utf8')
    const bundle = (await readOptional(files.bundle)) ?? existing
    return {bundle, certPem: existing, created: false, fingerprint: fingerprint(existing), keyPem}
  }

  const pair = await createCA(options.trustDomain)
  const ca = {...pair, bundle: pair.certPem, fingerprint: fingerprint(pair.certPem)}
  await saveCA(files, ca)
  return {...ca, created: true}
}

async function importCA(from: {certFile: string; keyFile: string}): Promise<ControllerCA> {
  const [certText, keyPem] = await Promise.all([readInput(from.certFile, '--ca-cert'), readInput(from.keyFile, '--ca-key')])
  const chain = splitPem(certText)
  if (chain.length === 0) {
    throw new ZtError('ZT_ERR_BAD_CA', `${from.certFile} holds no PEM certificate`, {
      suggestion: 'pass the intermediate CA certificate in PEM form (optionally followed by its chain)',
    })
  }

  const certPem = chain[0]
  await validateCA({certPem, keyPem})
  const info = certInfo(certPem)
  if (info.notAfter.getTime() <= Date.now()) {
    throw new ZtError('ZT_ERR_BAD_CA', `the --ca-cert certificate expired at ${info.notAfter.toISOString()}`, {
      suggestion: 'issue a fresh intermediate from your root',
    })
  }

  return {bundle: chain.join(''), certPem, fingerprint: fingerprint(certPem), keyPem}
}

async function saveCA(files: ReturnType<typeof caFiles>, ca: ControllerCA): Promise<void> {
  // Key first: a crash between the writes leaves no certificate without its key.
  await writeFileAtomic(files.key, ca.keyPem, 0o600)
  await writeFileAtomic(files.bundle, ca.bundle, 0o644)
  await writeFileAtomic(files.cert, ca.certPem, 0o644)
}

async function readInput(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (error) {
    throw new ZtError('ZT_ERR_BAD_CA', `cannot read ${flag} ${file}: ${(error as Error).message}`, {cause: error})
  }
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

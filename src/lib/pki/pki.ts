// The mesh PKI: an EC P-256 CA, CSRs made where the key lives, short-lived leaf certificates with a
// SPIFFE URI SAN. Built on WebCrypto through @peculiar/x509 (no native build, no openssl binary).
import {randomBytes, webcrypto} from 'node:crypto'
// @peculiar/x509 resolves its ASN.1 types through tsyringe, which needs the Reflect metadata polyfill first.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'

import {ZtError} from '../errors.js'
import {certInfo} from './cert-info.js'

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

const EC: webcrypto.EcKeyGenParams = {name: 'ECDSA', namedCurve: 'P-256'}
const SIGN: webcrypto.EcdsaParams = {hash: 'SHA-256', name: 'ECDSA'}
const IMPORT: webcrypto.EcKeyImportParams = {name: 'ECDSA', namedCurve: 'P-256'}

export interface KeyPairPem {
  certPem: string
  keyPem: string
}

export interface IssuedCert {
  certPem: string
  notAfter: Date
  notBefore: Date
  /** upper-case hex, as X509Certificate reports it */
  serial: string
}


function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der).toString('base64')
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join('\n')}\n-----END ${label}-----\n`
}

async function exportKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  return toPem(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY')
}

async function importPrivateKey(keyPem: string): Promise<webcrypto.CryptoKey> {
  const b64 = keyPem.replaceAll(/-----[^-]+-----|\s/g, '')
  try {
    return await webcrypto.subtle.importKey('pkcs8', Buffer.from(b64, 'base64'), IMPORT, true, ['sign'])
  } catch (error) {
    throw new ZtError('ZT_ERR_BAD_KEY', 'the private key is not an unencrypted PKCS#8 EC P-256 key', {
      cause: error,
      suggestion: 'convert it with `openssl pkcs8 -topk8 -nocrypt -in key.pem`',
    })
  }
}

function randomSerial(): string {
  const bytes = randomBytes(16)
  bytes[0] &= 0x7f // positive INTEGER
  bytes[0] |= 0x01 // no leading zero, so the hex form is stable
  return bytes.toString('hex')
}

/** A new self-signed root CA for the trust domain. */
export async function createCA(trustDomain: string, years = 10): Promise<KeyPairPem> {
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])
  const notBefore = new Date(Date.now() - 60_000)
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.SubjectAlternativeNameExtension([{type: 'url', value: `spiffe://${trustDomain}`}]),
    ],
    keys,
    name: `O=ztctl, CN=ztctl mesh CA ${trustDomain}`,
    notAfter: new Date(notBefore.getTime() + years * 365 * 86_400_000),
    notBefore,
    serialNumber: randomSerial(),
    signingAlgorithm: SIGN,
  })
  return {certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey)}
}

/** A key generated here and a CSR for it; the key never leaves the caller. */
export async function createKeyAndCsr(commonName: string): Promise<{csrPem: string; keyPem: string}> {
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    name: `CN=${commonName.replaceAll(/[,=+<>#;"\\]/g, '_')}`,
    signingAlgorithm: SIGN,
  })
  return {csrPem: csr.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey)}
}

export interface IssueOptions {
  /** DNS names for a server certificate */
  dnsNames?: string[]
  ipAddresses?: string[]
  spiffe: string
  ttlSeconds: number
}

export interface Signer {
  ca: KeyPairPem
  /** Issue a leaf certificate for the public key in a CSR; the CSR's own names are ignored. */
  signCsr(csrPem: string, options: IssueOptions): Promise<IssuedCert>
}

export async function createSigner(ca: KeyPairPem): Promise<Signer> {
  const caKey = await importPrivateKey(ca.keyPem)
  const caCert = new x509.X509Certificate(ca.certPem)
  const authorityKeyId = await x509.AuthorityKeyIdentifierExtension.create(caCert, false)
  return {
    ca,
    async signCsr(csrPem, options) {
      let csr: x509.Pkcs10CertificateRequest
      try {
        csr = new x509.Pkcs10CertificateRequest(csrPem)
      } catch (error) {
        throw new ZtError('ZT_ERR_BAD_CSR', 'the certificate signing request is not a valid PEM CSR', {cause: error})
      }

      if (!(await csr.verify())) {
        throw new ZtError('ZT_ERR_BAD_CSR', 'the CSR signature does not match its public key')
      }

      const names: x509.JsonGeneralName[] = [{type: 'url', value: options.spiffe}]
      for (const dns of options.dnsNames ?? []) names.push({type: 'dns', value: dns})
      for (const ip of options.ipAddresses ?? []) names.push({type: 'ip', value: ip})
      // Back-dated a minute so a peer whose clock is slightly behind still accepts it.
      const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000)
      const notAfter = new Date(notBefore.getTime() + 60_000 + options.ttlSeconds * 1000)
      const serial = randomSerial()
      const cert = await x509.X509CertificateGenerator.create({
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
          new x509.SubjectAlternativeNameExtension(names, true),
          authorityKeyId,
        ],
        issuer: caCert.subject,
        notAfter,
        notBefore,
        publicKey: csr.publicKey,
        serialNumber: serial,
        signingAlgorithm: SIGN,
        signingKey: caKey,
        subject: '',
      })
      return {certPem: cert.toString('pem') + '\n', notAfter, notBefore, serial: serial.toUpperCase()}
    },
  }
}

/** Check an imported CA pair: a CA certificate whose public key matches the EC P-256 key. */
export async function validateCA(ca: KeyPairPem): Promise<void> {
  const info = certInfo(ca.certPem)
  if (!info.isCA) {
    throw new ZtError('ZT_ERR_BAD_CA', 'the --ca-cert certificate is not a CA (basicConstraints CA:FALSE)', {
      suggestion: 'issue an intermediate with CA:TRUE from your root and pass that',
    })
  }

  const key = await importPrivateKey(ca.keyPem)
  const probe = randomBytes(32)
  const signature = await webcrypto.subtle.sign(SIGN, key, probe)
  const publicKey = await new x509.X509Certificate(ca.certPem).publicKey.export(IMPORT, ['verify'])
  if (!(await webcrypto.subtle.verify(SIGN, publicKey, signature, probe))) {
    throw new ZtError('ZT_ERR_BAD_CA', 'the --ca-key does not belong to the --ca-cert certificate')
  }
}

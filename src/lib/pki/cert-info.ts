// Reading certificates with node:crypto alone. Kept apart from pki.ts, whose X.509 generator library costs
// ~25 MB of RSS: the agent and most commands only read certificates, they never make them.
import {createHash, X509Certificate} from 'node:crypto'

export interface CertInfo {
  fingerprint256: string
  isCA: boolean
  issuer: string
  notAfter: Date
  notBefore: Date
  serial: string
  spiffe?: string
  subject: string
}

/** All certificates in a PEM bundle, in order. */
export function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((pem) => pem + '\n') ?? []
}

/** Whether the first certificate of CERT_PEM is issued and signed by one of BUNDLE's certificates (false for what does not parse). */
export function issuedByBundle(certPem: string, bundle: string): boolean {
  try {
    const leaf = new X509Certificate(splitPem(certPem)[0] ?? certPem)
    return splitPem(bundle).some((pem) => {
      const issuer = new X509Certificate(pem)
      return leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey)
    })
  } catch {
    return false
  }
}

export function certInfo(pem: string): CertInfo {
  const cert = new X509Certificate(pem)
  const spiffe = cert.subjectAltName
    ?.split(', ')
    .find((name) => name.startsWith('URI:spiffe://'))
    ?.slice(4)
  return {
    fingerprint256: fingerprint(pem),
    isCA: cert.ca,
    issuer: cert.issuer,
    notAfter: new Date(cert.validTo),
    notBefore: new Date(cert.validFrom),
    serial: cert.serialNumber.toUpperCase(),
    spiffe,
    subject: cert.subject,
  }
}

/** SHA-256 over the DER, lower-case hex without colons (what the enrollment JWT pins). */
export function fingerprint(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex')
}

/** The SPIFFE ID in a peer certificate as Node's TLS layer returns it (`subjectaltname`). */
export function spiffeFromSubjectAltName(subjectaltname: string | undefined): string | undefined {
  return subjectaltname
    ?.split(', ')
    .find((name) => name.startsWith('URI:spiffe://'))
    ?.slice(4)
}

/** The trust domain of a SPIFFE ID (`spiffe://TD/...`), or undefined when it is not one. */
export function trustDomainOf(spiffe: string | undefined): string | undefined {
  return spiffe ? /^spiffe:\/\/([^/]+)(\/|$)/.exec(spiffe)?.[1] : undefined
}

// Certificate issuance for identities: the CSR's public key, our SPIFFE ID, the configured TTL (the
// longer admin one for admins: an admin away for a weekend must not be locked out).
import type {CertRecord, IdentityRecord} from './store/store.js'
import type {ControllerServices} from './routes/types.js'

export interface IssuedIdentityCert {
  /** leaf PEM, followed by the CA certificate when the CA is an intermediate under a user's root */
  cert: string
  record: CertRecord
}

export async function issueIdentityCert(
  services: Pick<ControllerServices, 'adminCertTtlSeconds' | 'ca' | 'certTtlSeconds' | 'signer'>,
  identity: Pick<IdentityRecord, 'admin' | 'id' | 'spiffe'>,
  csrPem: string,
): Promise<IssuedIdentityCert> {
  const ttlSeconds = identity.admin ? services.adminCertTtlSeconds : services.certTtlSeconds
  const issued = await services.signer.signCsr(csrPem, {spiffe: identity.spiffe, ttlSeconds})
  const intermediate = services.ca.bundle.trim() === services.ca.certPem.trim() ? '' : services.ca.certPem
  return {
    cert: issued.certPem + intermediate,
    record: {
      identityId: identity.id,
      notAfter: issued.notAfter.toISOString(),
      notBefore: issued.notBefore.toISOString(),
      serial: issued.serial,
    },
  }
}

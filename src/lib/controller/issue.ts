// Certificate issuance: the CSR's public key, a SPIFFE ID, the configured TTL (the longer admin one for
// admins: an admin away for a weekend must not be locked out). Every certificate the controller signs is
// recorded with its owner before it leaves (revocation covers what is recorded): an enrollment's inside the
// token's transaction (completeEnrollment), everything else here.
import type {ControllerServices} from './routes/types.js'
import type {CertRecord, IdentityRecord} from './store/store.js'

export interface IssuedCert {
  /** leaf PEM, followed by the CA certificate when the CA is an intermediate under a user's root */
  cert: string
  record: CertRecord
}

type IssueServices = Pick<ControllerServices, 'adminCertTtlSeconds' | 'ca' | 'certTtlSeconds' | 'signer'>

async function sign(services: IssueServices, owner: Pick<IdentityRecord, 'admin' | 'id'>, spiffe: string, usage: CertRecord['usage'], csrPem: string): Promise<IssuedCert> {
  const ttlSeconds = owner.admin && usage === 'identity' ? services.adminCertTtlSeconds : services.certTtlSeconds
  const issued = await services.signer.signCsr(csrPem, {spiffe, ttlSeconds})
  const intermediate = services.ca.bundle.trim() === services.ca.certPem.trim() ? '' : services.ca.certPem
  return {
    cert: issued.certPem + intermediate,
    record: {identityId: owner.id, notAfter: issued.notAfter.toISOString(), notBefore: issued.notBefore.toISOString(), serial: issued.serial, spiffe, usage},
  }
}

/** An identity's own certificate, not yet recorded: enrollment records it with the token, atomically. */
export function issueIdentityCert(services: IssueServices, identity: Pick<IdentityRecord, 'admin' | 'id' | 'spiffe'>, csrPem: string): Promise<IssuedCert> {
  return sign(services, identity, identity.spiffe, 'identity', csrPem)
}

/** A renewal of an active identity's certificate, recorded (ZT_ERR_REVOKED when it was deleted meanwhile). */
export async function renewIdentityCert(services: IssueServices & Pick<ControllerServices, 'store'>, identity: Pick<IdentityRecord, 'admin' | 'id' | 'spiffe'>, csrPem: string): Promise<IssuedCert> {
  const issued = await issueIdentityCert(services, identity, csrPem)
  await services.store.recordCert(issued.record)
  return issued
}

/** A workload certificate NODE minted, recorded as its own: deleting the node revokes it. */
export async function issueWorkloadCert(services: IssueServices & Pick<ControllerServices, 'store'>, node: Pick<IdentityRecord, 'admin' | 'id'>, spiffe: string, csrPem: string): Promise<IssuedCert> {
  const issued = await sign(services, node, spiffe, 'workload', csrPem)
  await services.store.recordCert(issued.record)
  return issued
}

// Identity records as Secrets (the Kubernetes store). One Secret per identity holds its record and the
// serials of the certificates issued to it, so that every change to an identity — enrollment, renewal,
// revocation — is ONE object write: atomic, and one revision of the configuration. The live identity of
// a name has the Secret `ztctl-identity-<name>`; a revoked one keeps it until the name is reused, then
// it is retired to `ztctl-identity-retired-<id>` (its serials stay revoked until they expire).
import type {V1Secret} from '@kubernetes/client-node'

import {objectNameOf} from '../../kube/crds.js'
import {LABEL, ztctlLabels} from '../../kube/objects.js'
import type {CertRecord, IdentityRecord} from './store.js'

export const IDENTITY_COMPONENT = 'identity'
export const IDENTITY_SECRET_TYPE = 'ztctl.io/identity'
const RECORD_KEY = 'record.json'
export const TOKEN_LABEL = 'ztctl.io/token-id'
export const IDENTITY_ID_LABEL = 'ztctl.io/identity-id'
const STATE_LABEL = 'ztctl.io/identity-state'
const NAME_ANNOTATION = 'ztctl.io/identity'

/** A certificate recorded for the identity: its own ('identity'), or one it minted as a node ('workload'). */
export type StoredCert = Omit<CertRecord, 'identityId' | 'spiffe' | 'usage'> & Partial<Pick<CertRecord, 'spiffe' | 'usage'>>

/** What the Secret holds: the record, its token id and its certificates. */
export interface IdentityDoc extends IdentityRecord {
  certs: StoredCert[]
  tokenId: string
}

/** An identity Secret as read from the API server. */
export interface StoredIdentity {
  doc: IdentityDoc
  objectName: string
  resourceVersion: string
  uid: string
}

export const IDENTITY_SELECTOR = `${LABEL.managedBy}=ztctl,${LABEL.component}=${IDENTITY_COMPONENT}`

export const liveSecretName = (name: string): string => `ztctl-identity-${objectNameOf(name)}`
export const retiredSecretName = (id: string): string => `ztctl-identity-retired-${objectNameOf(id)}`

export function recordOf(doc: IdentityDoc): IdentityRecord {
  const {certs: _certs, tokenId: _tokenId, ...record} = doc
  return record
}

export function identitySecret(doc: IdentityDoc, objectName: string, namespace: string, install: string, resourceVersion?: string): V1Secret {
  return {
    apiVersion: 'v1',
    data: {[RECORD_KEY]: Buffer.from(JSON.stringify(doc)).toString('base64')},
    kind: 'Secret',
    metadata: {
      annotations: {[NAME_ANNOTATION]: doc.name},
      labels: {
        ...ztctlLabels(install, IDENTITY_COMPONENT),
        [IDENTITY_ID_LABEL]: objectNameOf(doc.id),
        [STATE_LABEL]: doc.status,
        [TOKEN_LABEL]: objectNameOf(doc.tokenId),
      },
      name: objectName,
      namespace,
      resourceVersion,
    },
    type: IDENTITY_SECRET_TYPE,
  }
}

/** The identity in a Secret, or undefined when the Secret is not a well-formed identity record. */
export function parseIdentitySecret(secret: V1Secret): StoredIdentity | undefined {
  const encoded = secret.data?.[RECORD_KEY]
  const {name, resourceVersion, uid} = secret.metadata ?? {}
  if (!encoded || !name || !resourceVersion) return undefined
  let doc: IdentityDoc
  try {
    doc = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8')) as IdentityDoc
  } catch {
    return undefined
  }

  const valid = typeof doc === 'object' && doc !== null && typeof doc.id === 'string' && typeof doc.name === 'string'
    && typeof doc.spiffe === 'string' && typeof doc.tokenId === 'string' && Array.isArray(doc.certs) && Array.isArray(doc.roles)
    && ['active', 'pending', 'revoked'].includes(doc.status)
  return valid ? {doc, objectName: name, resourceVersion, uid: uid ?? ''} : undefined
}

/** The certificates still valid at `now` (expired ones are dropped whenever a record is written). */
export const unexpired = (certs: readonly StoredCert[], now: Date): StoredCert[] => certs.filter((cert) => cert.notAfter > now.toISOString())

/** A stored certificate as the Store hands it out (records written before usage/spiffe existed: the identity's own). */
export const certRecord = (cert: StoredCert, doc: Pick<IdentityDoc, 'id' | 'spiffe'>): CertRecord =>
  ({...cert, identityId: doc.id, spiffe: cert.spiffe ?? doc.spiffe, usage: cert.usage ?? 'identity'})

// The controller's state behind one backend-neutral interface: SQLite (sqlite.ts, the default) and the
// Kubernetes API (kube.ts: custom resources + Secrets) implement it with the same behaviour, checked by one
// contract suite against both (test/controller/store-contract.ts). Nothing here may mention SQL, rows,
// files or API objects; every method is async for that reason.
import type {Change, ConfigSnapshot, ResourceKind, ResourceKinds, ResourceStatus} from '../../config/types.js'

export type IdentityStatus = 'active' | 'pending' | 'revoked'

/**
 * What an identity may act for, fixed when it is created. A node identity is bound either to a Kubernetes
 * node (`node`: the pods on that node) or, without Kubernetes, to what its creator listed (`serves`,
 * `podCidrs`). Enforced by the controller's NodeAuthority (node-authority.ts), not by the store.
 */
export interface IdentityScope {
  /** the Kubernetes node this identity runs on */
  node?: string
  /** `namespace/serviceAccount` patterns it may serve, `*` standing for a whole part: 'prod/payments', 'prod/*' (any account in prod) */
  serves?: string[]
  /** CIDRs the IPs of the workloads it publishes must lie in */
  podCidrs?: string[]
}

export interface IdentityRecord {
  /** admin identities may call the management API */
  admin: boolean
  createdAt: string
  enrolledAt?: string
  /** stable id, unique forever (a name can be reused after deletion; the id cannot) */
  id: string
  name: string
  revokedAt?: string
  roles: string[]
  scope?: IdentityScope
  spiffe: string
  status: IdentityStatus
  /** when the one-time enrollment token stops being valid */
  tokenExpiresAt: string
}

export interface NewIdentity {
  admin: boolean
  id: string
  name: string
  roles: string[]
  scope?: IdentityScope
  spiffe: string
  /** the enrollment token's `jti` */
  tokenId: string
  tokenExpiresAt: string
}

/** Every certificate the controller signs, recorded before it is handed out, so revocation covers it. */
export interface CertRecord {
  /** the holder (its own certificate) or the node that minted it (a workload certificate) */
  identityId: string
  notAfter: string
  notBefore: string
  /** upper-case hex */
  serial: string
  /** the SPIFFE ID the certificate carries: the identity's own, or spiffe://TD/ns/NS/sa/SA */
  spiffe: string
  /** 'identity' authenticates its holder to the controller API; 'workload' (minted by a node) never does: HBONE only */
  usage: 'identity' | 'workload'
}

/** What a request's client certificate maps to, when it is still acceptable. */
export interface Principal {
  cert: CertRecord
  identity: IdentityRecord
}

/** An agent's last report. recordAgentStatus merges: a field left undefined keeps its stored value. */
export interface AgentStatusRecord {
  ackedVersion?: number
  /**
   * whether its config stream is open on some controller replica (backends with several replicas
   * record it; a single controller knows it from its own streams)
   */
  connected?: boolean
  lastSeen?: string
  name: string
  /** per-resource status of `ackedVersion`, as the agent's last ack listed it (replaced by each ack) */
  resources?: ResourceStatus[]
  /** the agent's software version (from its subscribe) */
  software?: string
}

export interface ResourceListing<K extends ResourceKind> {
  items: ResourceKinds[K][]
  version: number
}

export interface Store {
  readonly backend: string
  close(): Promise<void>

  /** Small settings fixed at first start (trust domain, ...). */
  getMeta(key: string): Promise<string | undefined>
  setMeta(key: string, value: string): Promise<void>

  /** Creates a pending identity with its enrollment token, and its `identity` resource. Throws ZT_ERR_NAME_TAKEN. */
  createIdentity(identity: NewIdentity): Promise<IdentityRecord>
  /** The live (not revoked) identity of that name. */
  getIdentity(name: string): Promise<IdentityRecord | undefined>
  listIdentities(): Promise<IdentityRecord[]>
  /** The identity a token was issued for, with the token's state; undefined when the token is unknown. */
  findToken(tokenId: string): Promise<{identity: IdentityRecord; used: boolean} | undefined>
  /**
   * Consume a one-time token and record the certificate issued for it, atomically: of two concurrent
   * enrollments with one token exactly one succeeds. Throws ZT_ERR_TOKEN_USED / ZT_ERR_TOKEN_EXPIRED /
   * ZT_ERR_REVOKED.
   */
  completeEnrollment(tokenId: string, cert: CertRecord, now: Date): Promise<IdentityRecord>
  /**
   * Record a certificate the controller signed, before it is handed out: a renewal, or a workload
   * certificate a node minted. Throws ZT_ERR_REVOKED when the identity is no longer active, atomically
   * with the insert: a revocation that lands while we sign wins.
   */
  recordCert(cert: CertRecord): Promise<void>
  /** The identity and certificate behind a client certificate serial (usage 'identity' only), when both are still valid. */
  authenticate(serial: string, now: Date): Promise<Principal | undefined>
  /**
   * Revoke an identity: it is refused from now on; every unexpired certificate recorded for it, of both
   * usages, becomes a `revocation` resource carrying that certificate's own SPIFFE ID; its `identity`
   * resource is deleted; all in one revision. Throws ZT_ERR_NOT_FOUND.
   */
  revokeIdentity(name: string, now: Date): Promise<{identity: IdentityRecord; revoked: CertRecord[]; version: number}>

  /** The revision of the configuration: bumped by every committed change, never reused. */
  currentVersion(): Promise<number>
  listResources<K extends ResourceKind>(kind: K): Promise<ResourceListing<K>>
  /** One resource by key (O(1): the workload routes check ownership per request). */
  getResource<K extends ResourceKind>(kind: K, key: string): Promise<ResourceKinds[K] | undefined>
  /** Put (create or replace) a resource; returns the new version, or the current one when nothing changed. */
  putResource<K extends ResourceKind>(kind: K, key: string, value: ResourceKinds[K]): Promise<number>
  /** Delete a resource; throws ZT_ERR_NOT_FOUND when it does not exist. */
  deleteResource(kind: ResourceKind, key: string): Promise<number>
  snapshot(): Promise<{resources: ConfigSnapshot; version: number}>
  /** Changes after `since`, or undefined when the change log no longer reaches back that far. */
  changesSince(since: number): Promise<{changes: Change[]; version: number} | undefined>
  /**
   * Called after every commit that changed the configuration, including changes other writers made
   * (kubectl on the Kubernetes backend); returns an unsubscribe function.
   */
  onCommit(listener: (version: number) => void): () => void
  /**
   * Drop what expiry made noise: revocations of certificates past their notAfter, and (where the backend
   * keeps them) records of deleted identities with nothing left to revoke. Run by the leader. Returns the
   * version after it.
   */
  sweepExpired(now: Date): Promise<number>

  /**
   * Agent bookkeeping outside the configuration (it does not bump the revision). Every ack of every
   * agent lands here: a backend may batch what arrives together (it resolves once stored), and
   * listAgentStatus sees every status whose promise resolved.
   */
  recordAgentStatus(status: AgentStatusRecord): Promise<void>
  listAgentStatus(): Promise<AgentStatusRecord[]>
}

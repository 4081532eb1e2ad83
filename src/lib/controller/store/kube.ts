// The Store on the Kubernetes API (`controller run --store kubernetes`), so a restarted or rescheduled
// controller loses nothing and several replicas share one state:
// - configuration kinds are the custom resources of src/lib/kube/crds.ts (`.spec` = the resource value,
//   object name objectNameOf(key), exact key in the ztctl.io/key annotation); kubectl may edit them too;
// - identities (with their enrollment token id and the serials of their certificates) are Secrets, one
//   per identity (kube-identities.ts): every identity change is one object write;
// - small settings are the ConfigMap ztctl-meta, agent status the ConfigMap ztctl-agent-status (written
//   behind, merged per agent: it is not configuration and bumps no revision).
// Revisions are the API server's resourceVersions (kube-follower.ts). One-time tokens are consumed by an
// update with a resourceVersion precondition: of N concurrent enrollments on any replicas, one wins.
import {hostname} from 'node:os'

import type {V1ConfigMap, V1Secret} from '@kubernetes/client-node'

import {type Change, type ResourceKind, resourceKey, type ResourceKinds} from '../../config/types.js'
import {ExitCode, ZtError} from '../../errors.js'
import {type KubeClients, isConflict, isNotFound, kubeError} from '../../kube/client.js'
import {CRD_GROUP, CRD_KINDS, CRD_SPECS, CRD_VERSION, CRD_API_VERSION, type CrdKind, KEY_ANNOTATION, objectNameOf} from '../../kube/crds.js'
import {DEFAULT_INSTALL, RUNTIME_OBJECTS, ztctlLabels} from '../../kube/objects.js'
import type {Logger} from '../logger.js'
import {checkTokenUsable} from './errors.js'
import {ConfigFollower, type ObjectSource} from './kube-follower.js'
import {
  certRecord, IDENTITY_ID_LABEL, IDENTITY_SELECTOR, type IdentityDoc, identitySecret, liveSecretName, parseIdentitySecret, recordOf, retiredSecretName,
  type StoredIdentity, TOKEN_LABEL, unexpired,
} from './kube-identities.js'
import {KubeAgentStatus} from './kube-status.js'
import {canonicalJson, type CustomObject, valueOfSpec} from './kube-view.js'
import type {AgentStatusRecord, CertRecord, IdentityRecord, NewIdentity, Principal, ResourceListing, Store} from './store.js'

export interface KubeStoreOptions {
  clients: KubeClients
  /** the install namespace: every object of the store lives here */
  namespace: string
  /** the `ztctl.io/install` label of the objects made at run time */
  install?: string
  logger?: Logger
  changeLogRevisions?: number
  /** who this replica is in the agent status (default: host name and PID) */
  replica?: string
  /** agent status is written behind, at most this often (default 200 ms) */
  statusFlushMs?: number
  resyncMs?: number
}

const CHANGE_LOG_REVISIONS = 10_000
/** Optimistic-concurrency retries of one write before giving up. */
const MAX_ATTEMPTS = 8
const silent: Logger = {debug() {}, error() {}, info() {}, warn() {}}

export async function openKubeStore(options: KubeStoreOptions): Promise<Store> {
  const store = new KubeStore(options)
  await store.start()
  return store
}

const notFound = (what: string): ZtError => new ZtError('ZT_ERR_NOT_FOUND', `${what} does not exist`, {exit: ExitCode.notFound})

class KubeStore implements Store {
  readonly backend = 'kubernetes'
  private readonly follower: ConfigFollower
  private readonly status: KubeAgentStatus
  private readonly install: string
  private readonly namespace: string
  private readonly clients: KubeClients
  /** serial → identity Secret name, from the last sync or the last quorum list */
  private index = {at: -1, map: new Map<string, string>()}
  /** serials this replica recorded itself (found at once, before any sync) */
  private readonly recent = new Map<string, string>()
  private generation = 0
  private refreshed = 0
  private refreshing?: {done: Promise<void>; generation: number}
  private closed = false

  constructor(options: KubeStoreOptions) {
    this.clients = options.clients
    this.namespace = options.namespace
    this.install = options.install ?? DEFAULT_INSTALL
    const logger = options.logger ?? silent
    this.follower = new ConfigFollower({
      changeLogRevisions: options.changeLogRevisions ?? CHANGE_LOG_REVISIONS,
      kc: this.clients.kc,
      latestRevision: () => this.latestRevision(),
      logger,
      parseIdentity: (object) => parseIdentitySecret(object as V1Secret),
      resyncMs: options.resyncMs,
      sources: [this.identitySource(), ...CRD_KINDS.map((kind) => this.customSource(kind))],
    })
    this.status = new KubeAgentStatus({
      core: this.clients.core, flushMs: options.statusFlushMs ?? 200, install: this.install, k8s: this.clients.k8s, logger, namespace: this.namespace,
      replica: options.replica ?? `${hostname()}-${process.pid}`,
    })
  }

  async start(): Promise<void> {
    try {
      await this.follower.start()
    } catch (error) {
      if (isNotFound(error)) {
        throw new ZtError('ZT_ERR_NOT_INSTALLED', `the ztctl custom resources or the namespace ${this.namespace} are missing: ${kubeError(error, 'list them').message}`, {
          cause: error, exit: ExitCode.notFound, suggestion: 'install ztctl first (`ztctl install`), or pass the install namespace',
        })
      }

      throw kubeError(error, `read the configuration in namespace ${this.namespace}`)
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.follower.close()
    await this.status.close()
  }

  // ---- meta ----

  async getMeta(key: string): Promise<string | undefined> {
    const map = await this.readConfigMap(RUNTIME_OBJECTS.metaConfigMap)
    return map?.data?.[key]
  }

  async setMeta(key: string, value: string): Promise<void> {
    const name = RUNTIME_OBJECTS.metaConfigMap
    await this.write(`write ConfigMap ${name}`, async () => {
      if (await this.readConfigMap(name)) {
        await this.clients.core.patchNamespacedConfigMap({body: {data: {[key]: value}}, name, namespace: this.namespace}, this.mergePatch())
      } else {
        const body: V1ConfigMap = {data: {[key]: value}, metadata: {labels: ztctlLabels(this.install, 'controller'), name, namespace: this.namespace}}
        try {
          await this.clients.core.createNamespacedConfigMap({body, namespace: this.namespace})
        } catch (error) {
          // Another replica made it first (both started at once): the next attempt patches it.
          if (isConflict(error)) return undefined
          throw error
        }
      }

      return true
    })
  }

  // ---- identities ----

  async createIdentity(identity: NewIdentity): Promise<IdentityRecord> {
    const doc: IdentityDoc = {
      admin: identity.admin, certs: [], createdAt: new Date().toISOString(), id: identity.id, name: identity.name, roles: identity.roles,
      ...(identity.scope ? {scope: identity.scope} : {}), spiffe: identity.spiffe, status: 'pending', tokenExpiresAt: identity.tokenExpiresAt,
      tokenId: identity.tokenId,
    }
    const objectName = liveSecretName(identity.name)
    const created = await this.write(`create the identity Secret ${objectName}`, async () => {
      try {
        return await this.clients.core.createNamespacedSecret({body: identitySecret(doc, objectName, this.namespace, this.install), namespace: this.namespace})
      } catch (error) {
        if (!isConflict(error)) throw error
      }

      const existing = await this.readIdentity(objectName)
      if (existing && existing.doc.status !== 'revoked') {
        throw new ZtError('ZT_ERR_NAME_TAKEN', `an identity named "${identity.name}" already exists`, {
          exit: ExitCode.conflict,
          suggestion: `pick another name, or delete the old one first with \`ztctl identity delete ${identity.name}\``,
        })
      }

      if (existing) await this.retire(existing)
      return undefined // try again
    })
    await this.follower.reach(Number(created.metadata?.resourceVersion))
    return recordOf(doc)
  }

  async getIdentity(name: string): Promise<IdentityRecord | undefined> {
    const stored = await this.readIdentity(liveSecretName(name))
    return stored && stored.doc.name === name && stored.doc.status !== 'revoked' ? recordOf(stored.doc) : undefined
  }

  async listIdentities(): Promise<IdentityRecord[]> {
    const all = await this.listIdentitySecrets()
    return all.filter((item) => item.doc.status !== 'revoked').map((item) => recordOf(item.doc)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  async findToken(tokenId: string): Promise<{identity: IdentityRecord; used: boolean} | undefined> {
    const stored = await this.identityByToken(tokenId)
    return stored && {identity: recordOf(stored.doc), used: stored.doc.status !== 'pending'}
  }

  async completeEnrollment(tokenId: string, cert: CertRecord, now: Date): Promise<IdentityRecord> {
    const done = await this.write('record the enrollment', async () => {
      const stored = await this.identityByToken(tokenId)
      if (!stored) throw new ZtError('ZT_ERR_TOKEN_INVALID', 'the enrollment token is not known to this controller', {exit: ExitCode.auth})
      const {doc} = stored
      checkTokenUsable(doc, now)
      const next: IdentityDoc = {...doc, certs: [...unexpired(doc.certs, now), issued(cert)], enrolledAt: now.toISOString(), status: 'active'}
      // The resourceVersion precondition is what makes the token one-time: a concurrent enrollment
      // conflicts, reads again, and finds the token used.
      return (await this.replaceIdentity(stored, next)) && {name: stored.objectName, next}
    })
    this.remember(cert.serial, done.name)
    return recordOf(done.next)
  }

  async recordCert(cert: CertRecord): Promise<void> {
    const name = await this.write('record a certificate', async () => {
      const stored = await this.identityById(cert.identityId)
      if (stored?.doc.status !== 'active') {
        throw new ZtError('ZT_ERR_REVOKED', `identity "${stored?.doc.name ?? cert.identityId}" is not active (deleted meanwhile?); the certificate is not handed out`, {exit: ExitCode.auth})
      }

      // The precondition makes this atomic with a revocation: one that lands first makes us read again and refuse.
      const next: IdentityDoc = {...stored.doc, certs: [...unexpired(stored.doc.certs, new Date()), issued(cert)]}
      return (await this.replaceIdentity(stored, next)) && stored.objectName
    })
    this.remember(cert.serial, name)
  }

  async authenticate(serial: string, now: Date): Promise<Principal | undefined> {
    const wanted = serial.toUpperCase()
    const generation = this.generation
    let objectName = this.lookup(wanted)
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!objectName || attempt > 0) {
        // Unknown here, or moved: perhaps just issued on another replica. Ask the API server.
        await this.refreshIndex(generation)
        objectName = this.lookup(wanted)
        if (!objectName) return undefined
      }

      // Read the record itself: a revocation on another replica counts at once, not after a sync.
      const stored = await this.readIdentity(objectName)
      const cert = stored?.doc.certs.find((item) => item.serial === wanted)
      if (stored && cert) {
        // Workload certificates a node minted are HBONE credentials, never API ones.
        if (stored.doc.status !== 'active' || cert.notAfter <= now.toISOString() || (cert.usage ?? 'identity') !== 'identity') return undefined
        return {cert: certRecord(cert, stored.doc), identity: recordOf(stored.doc)}
      }

      this.recent.delete(wanted)
    }

    return undefined
  }

  async revokeIdentity(name: string, now: Date): Promise<{identity: IdentityRecord; revoked: CertRecord[]; version: number}> {
    const result = await this.write(`revoke identity ${name}`, async () => {
      const stored = await this.readIdentity(liveSecretName(name))
      if (!stored || stored.doc.name !== name || stored.doc.status === 'revoked') throw notFound(`identity "${name}"`)
      const certs = unexpired(stored.doc.certs, now)
      const next: IdentityDoc = {...stored.doc, certs, revokedAt: now.toISOString(), status: 'revoked'}
      const written = await this.replaceIdentity(stored, next)
      return written && {next, rv: Number(written.metadata?.resourceVersion)}
    })
    await this.follower.reach(result.rv)
    return {
      identity: recordOf(result.next),
      revoked: result.next.certs.map((cert) => certRecord(cert, result.next)),
      version: this.follower.version,
    }
  }

  // ---- configuration ----

  async currentVersion(): Promise<number> {
    return this.follower.version
  }

  async listResources<K extends ResourceKind>(kind: K): Promise<ResourceListing<K>> {
    // A read after a write on another replica must see it: sync to the cluster's latest revision first.
    await this.follower.fresh()
    return {items: this.follower.list(kind) as ResourceKinds[K][], version: this.follower.version}
  }

  async getResource<K extends ResourceKind>(kind: K, key: string): Promise<ResourceKinds[K] | undefined> {
    // As listResources: a read after a write on another replica must see it.
    await this.follower.fresh()
    return this.follower.get(kind, key) as ResourceKinds[K] | undefined
  }

  async putResource<K extends ResourceKind>(kind: K, key: string, value: ResourceKinds[K]): Promise<number> {
    const crd = this.writableKind(kind)
    if (resourceKey(kind, value) !== key) throw new ZtError('ZT_ERR_BAD_REQUEST', `the key "${key}" does not match the ${kind} resource ("${resourceKey(kind, value)}")`, {exit: ExitCode.usage})
    const rv = await this.write(`write ${CRD_SPECS[crd].kind} ${key}`, async () => {
      const existing = await this.findObject(crd, key)
      if (existing && canonicalJson(existing.spec) === canonicalJson(value)) return Number(existing.metadata?.resourceVersion)
      const body = this.customObject(crd, key, value, existing)
      const api = this.clients.custom
      const target = {group: CRD_GROUP, namespace: this.namespace, plural: CRD_SPECS[crd].plural, version: CRD_VERSION}
      try {
        const written = (existing
          ? await api.replaceNamespacedCustomObject({...target, body, name: existing.metadata!.name!})
          : await api.createNamespacedCustomObject({...target, body})) as CustomObject
        return Number(written.metadata?.resourceVersion)
      } catch (error) {
        if (isConflict(error)) return undefined // changed or created meanwhile: read again
        throw error
      }
    })
    await this.follower.reach(rv)
    return this.follower.version
  }

  async deleteResource(kind: ResourceKind, key: string): Promise<number> {
    const crd = this.writableKind(kind)
    const {plural} = CRD_SPECS[crd]
    await this.write(`delete ${CRD_SPECS[crd].kind} ${key}`, async () => {
      const objects = (await this.listCustom(crd)).filter((object) => keyOfObject(crd, object) === key)
      if (objects.length === 0) throw notFound(`${kind} "${key}"`)
      for (const object of objects) {
        try {
          await this.clients.custom.deleteNamespacedCustomObject({
            body: {preconditions: {resourceVersion: object.metadata?.resourceVersion, uid: object.metadata?.uid}},
            group: CRD_GROUP, name: object.metadata!.name!, namespace: this.namespace, plural, version: CRD_VERSION,
          })
        } catch (error) {
          if (isConflict(error)) return undefined // changed meanwhile: look again
          if (!isNotFound(error)) throw error
        }
      }

      return true
    })
    await this.follower.fresh()
    return this.follower.version
  }

  async snapshot() {
    return this.follower.snapshot()
  }

  async changesSince(since: number): Promise<{changes: Change[]; version: number} | undefined> {
    return this.follower.changesSince(since)
  }

  onCommit(listener: (version: number) => void): () => void {
    return this.follower.onCommit(listener)
  }

  async sweepExpired(now: Date): Promise<number> {
    const nowIso = now.toISOString()
    for (const stored of await this.listIdentitySecrets()) {
      if (stored.doc.status !== 'revoked') continue
      const certs = unexpired(stored.doc.certs, now)
      if (certs.length === stored.doc.certs.length && (certs.length > 0 || stored.doc.tokenExpiresAt > nowIso)) continue
      await this.ignoringRaces(async () => {
        if (certs.length === 0 && stored.doc.tokenExpiresAt <= nowIso) {
          const preconditions = {resourceVersion: stored.resourceVersion, uid: stored.uid}
          await this.clients.core.deleteNamespacedSecret({body: {preconditions}, name: stored.objectName, namespace: this.namespace})
        } else {
          await this.replaceIdentity(stored, {...stored.doc, certs})
        }
      })
    }

    for (const object of await this.listCustom('revocation')) {
      const parsed = valueOfSpec('revocation', object.spec)
      if ('problem' in parsed || (parsed.value as ResourceKinds['revocation']).notAfter > nowIso) continue
      await this.ignoringRaces(() => this.clients.custom.deleteNamespacedCustomObject({
        body: {preconditions: {resourceVersion: object.metadata?.resourceVersion}},
        group: CRD_GROUP, name: object.metadata!.name!, namespace: this.namespace, plural: CRD_SPECS.revocation.plural, version: CRD_VERSION,
      }))
    }

    await this.follower.fresh()
    return this.follower.version
  }

  // ---- agent status ----

  async recordAgentStatus(status: AgentStatusRecord): Promise<void> {
    this.status.record(status)
  }

  async listAgentStatus(): Promise<AgentStatusRecord[]> {
    return this.status.list()
  }

  // ---- helpers ----

  private identitySource(): ObjectSource {
    return {
      labelSelector: IDENTITY_SELECTOR,
      list: (rv?: number) => this.clients.core.listNamespacedSecret({labelSelector: IDENTITY_SELECTOR, namespace: this.namespace, ...atRevision(rv)})
        .then((list) => ({items: list.items, resourceVersion: list.metadata?.resourceVersion ?? ''})),
      name: 'identity',
      watchPath: `/api/v1/namespaces/${this.namespace}/secrets`,
    }
  }

  private customSource(kind: CrdKind): ObjectSource {
    const {plural} = CRD_SPECS[kind]
    return {
      list: (rv?: number) => this.clients.custom.listNamespacedCustomObject({group: CRD_GROUP, namespace: this.namespace, plural, version: CRD_VERSION, ...atRevision(rv)})
        .then((list: {items?: unknown[]; metadata?: {resourceVersion?: string}}) => ({items: list.items ?? [], resourceVersion: list.metadata?.resourceVersion ?? ''})),
      name: kind,
      watchPath: `/apis/${CRD_GROUP}/${CRD_VERSION}/namespaces/${this.namespace}/${plural}`,
    }
  }

  /** The cluster's current revision: a quorum read of one item. */
  private async latestRevision(): Promise<number> {
    const list = await this.clients.core.listNamespacedConfigMap({limit: 1, namespace: this.namespace})
    return Number(list.metadata?.resourceVersion)
  }

  /**
   * Run an optimistic write: `attempt` returns the result, or undefined to be run again after a
   * conflict. API failures become ZtErrors that say what was being done.
   */
  private async write<T>(what: string, attempt: () => Promise<T | undefined>): Promise<T> {
    for (let count = 0; count < MAX_ATTEMPTS; count++) {
      try {
        const result = await attempt()
        if (result !== undefined) return result
      } catch (error) {
        throw kubeError(error, what)
      }

      await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * (count + 1)))
    }

    throw new ZtError('ZT_ERR_CONFLICT', `cannot ${what}: other writers kept changing it (${MAX_ATTEMPTS} attempts)`, {exit: ExitCode.conflict, suggestion: 'try again'})
  }

  /** A write another replica may have done first (the leader's sweep): losing that race is fine. */
  private async ignoringRaces(work: () => Promise<unknown>): Promise<void> {
    try {
      await work()
    } catch (error) {
      if (!isConflict(error) && !isNotFound(error)) throw kubeError(error, 'sweep expired records')
    }
  }

  private writableKind(kind: ResourceKind): CrdKind {
    if (kind === 'identity') {
      throw new ZtError('ZT_ERR_BAD_REQUEST', 'identity resources are derived from the identity records; create identities instead', {exit: ExitCode.usage})
    }

    return kind
  }

  private customObject(kind: CrdKind, key: string, value: unknown, existing?: CustomObject): Record<string, unknown> {
    return {
      apiVersion: CRD_API_VERSION,
      kind: CRD_SPECS[kind].kind,
      metadata: {
        ...(existing ? {name: existing.metadata?.name, resourceVersion: existing.metadata?.resourceVersion} : {name: objectNameOf(key)}),
        annotations: {...existing?.metadata?.annotations, [KEY_ANNOTATION]: key},
        labels: {...(existing as {metadata?: {labels?: Record<string, string>}} | undefined)?.metadata?.labels, ...ztctlLabels(this.install, 'config')},
        namespace: this.namespace,
      },
      spec: value,
    }
  }

  /** The object that holds `key`: ours (named after the key) or one kubectl made under another name. */
  private async findObject(kind: CrdKind, key: string): Promise<CustomObject | undefined> {
    const name = objectNameOf(key)
    try {
      const object = (await this.clients.custom.getNamespacedCustomObject({
        group: CRD_GROUP, name, namespace: this.namespace, plural: CRD_SPECS[kind].plural, version: CRD_VERSION,
      })) as CustomObject
      if (keyOfObject(kind, object) === key) return object
      throw new ZtError('ZT_ERR_CONFLICT', `${CRD_SPECS[kind].kind} ${name} in ${this.namespace} holds another ${kind} than "${key}"`, {
        exit: ExitCode.conflict, suggestion: `rename or delete it: \`kubectl -n ${this.namespace} get ${CRD_SPECS[kind].plural} ${name} -o yaml\``,
      })
    } catch (error) {
      if (!isNotFound(error)) throw error
    }

    if (!this.follower.has(kind, key)) return undefined
    return (await this.listCustom(kind)).find((object) => keyOfObject(kind, object) === key)
  }

  private async listCustom(kind: CrdKind): Promise<CustomObject[]> {
    const list = (await this.clients.custom.listNamespacedCustomObject({
      group: CRD_GROUP, namespace: this.namespace, plural: CRD_SPECS[kind].plural, version: CRD_VERSION,
    })) as {items?: CustomObject[]}
    return list.items ?? []
  }

  private async readConfigMap(name: string): Promise<undefined | V1ConfigMap> {
    try {
      return await this.clients.core.readNamespacedConfigMap({name, namespace: this.namespace})
    } catch (error) {
      if (isNotFound(error)) return undefined
      throw kubeError(error, `read ConfigMap ${name} in ${this.namespace}`)
    }
  }

  private mergePatch() {
    const {PatchStrategy, setHeaderOptions} = this.clients.k8s
    return setHeaderOptions('Content-Type', PatchStrategy.MergePatch)
  }

  private async readIdentity(objectName: string): Promise<StoredIdentity | undefined> {
    try {
      return parseIdentitySecret(await this.clients.core.readNamespacedSecret({name: objectName, namespace: this.namespace}))
    } catch (error) {
      if (isNotFound(error)) return undefined
      throw kubeError(error, `read Secret ${objectName} in ${this.namespace}`)
    }
  }

  private async listIdentitySecrets(labelSelector = IDENTITY_SELECTOR): Promise<StoredIdentity[]> {
    return (await this.listIdentitiesAt(labelSelector)).identities
  }

  /** A quorum list of identity Secrets and the revision it was taken at. */
  private async listIdentitiesAt(labelSelector = IDENTITY_SELECTOR): Promise<{identities: StoredIdentity[]; revision: number}> {
    try {
      const list = await this.clients.core.listNamespacedSecret({labelSelector, namespace: this.namespace})
      const identities = list.items.map((secret) => parseIdentitySecret(secret)).filter((item): item is StoredIdentity => item !== undefined)
      return {identities, revision: Number(list.metadata?.resourceVersion) || 0}
    } catch (error) {
      throw kubeError(error, `list the identity Secrets in ${this.namespace}`)
    }
  }

  private async identityByToken(tokenId: string): Promise<StoredIdentity | undefined> {
    const found = await this.listIdentitySecrets(`${IDENTITY_SELECTOR},${TOKEN_LABEL}=${objectNameOf(tokenId)}`)
    return found.find((item) => item.doc.tokenId === tokenId)
  }

  private async identityById(id: string): Promise<StoredIdentity | undefined> {
    const found = await this.listIdentitySecrets(`${IDENTITY_SELECTOR},${IDENTITY_ID_LABEL}=${objectNameOf(id)}`)
    return found.find((item) => item.doc.id === id)
  }

  /** Replace an identity Secret if nobody changed it since it was read; undefined on a conflict. */
  private async replaceIdentity(stored: StoredIdentity, next: IdentityDoc): Promise<undefined | V1Secret> {
    try {
      const body = identitySecret(next, stored.objectName, this.namespace, this.install, stored.resourceVersion)
      return await this.clients.core.replaceNamespacedSecret({body, name: stored.objectName, namespace: this.namespace})
    } catch (error) {
      if (isConflict(error)) return undefined
      throw error
    }
  }

  /** Move a revoked identity out of its name's Secret (its serials stay revoked), so the name can be reused. */
  private async retire(stored: StoredIdentity): Promise<void> {
    try {
      await this.clients.core.createNamespacedSecret({body: identitySecret(stored.doc, retiredSecretName(stored.doc.id), this.namespace, this.install), namespace: this.namespace})
    } catch (error) {
      if (!isConflict(error)) throw error
    }

    try {
      const preconditions = {resourceVersion: stored.resourceVersion, uid: stored.uid}
      await this.clients.core.deleteNamespacedSecret({body: {preconditions}, name: stored.objectName, namespace: this.namespace})
    } catch (error) {
      if (!isConflict(error) && !isNotFound(error)) throw error
    }
  }

  private remember(serial: string, objectName: string): void {
    if (this.recent.size > 10_000) this.recent.clear()
    this.recent.set(serial.toUpperCase(), objectName)
  }

  /** The Secret that holds a serial: what this replica recorded, else the last sync, else undefined. */
  private lookup(serial: string): string | undefined {
    if (this.index.at < this.follower.syncedAt) {
      this.index = {at: this.follower.syncedAt, map: indexSerials(this.follower.identities)}
    }

    return this.recent.get(serial) ?? this.index.map.get(serial)
  }

  /** Re-read every identity Secret, with a quorum list that started after generation `after` (shared). */
  private async refreshIndex(after: number): Promise<void> {
    for (;;) {
      if (this.refreshed > after) return
      if (this.refreshing && this.refreshing.generation > after) {
        await this.refreshing.done
        return
      }

      if (this.refreshing) {
        await this.refreshing.done.catch(() => {})
        continue
      }

      const generation = ++this.generation
      const done = this.listIdentitiesAt().then(({identities, revision}) => {
        // Stamped with the list's own revision: only a follower sync past it may replace this index (one
        // behind it, still catching up on the commits that issued the certificate, must not).
        if (revision >= this.index.at) this.index = {at: revision, map: indexSerials(identities)}
        this.refreshed = Math.max(this.refreshed, generation)
      }).finally(() => {
        this.refreshing = undefined
      })
      this.refreshing = {done, generation}
    }
  }
}

function indexSerials(identities: readonly StoredIdentity[]): Map<string, string> {
  const map = new Map<string, string>()
  for (const {doc, objectName} of identities) for (const cert of doc.certs) map.set(cert.serial, objectName)
  return map
}

const atRevision = (rv?: number) => (rv === undefined ? {} : {resourceVersion: String(rv), resourceVersionMatch: 'Exact'})

const issued = (cert: CertRecord) => ({notAfter: cert.notAfter, notBefore: cert.notBefore, serial: cert.serial.toUpperCase(), spiffe: cert.spiffe, usage: cert.usage})

function keyOfObject(kind: CrdKind, object: CustomObject): string | undefined {
  const parsed = valueOfSpec(kind, object.spec)
  return 'problem' in parsed ? undefined : resourceKey(kind, parsed.value)
}

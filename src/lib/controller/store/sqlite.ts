// The default Store backend: one SQLite file through node:sqlite (no native build). WAL with
// synchronous=FULL, so a committed transaction survives kill -9 and power loss, and every mutation is
// one transaction that also bumps the revision and appends to the change log. Agent statuses (soft
// state, re-reported on every resubscribe) are written without the fsync.
import {EventEmitter} from 'node:events'
import {chmod, mkdir, open} from 'node:fs/promises'
import path from 'node:path'
import type {DatabaseSync} from 'node:sqlite'

import {type Change, type ConfigSnapshot, emptySnapshot, type ResourceKind, type ResourceKinds} from '../../config/types.js'
import {ExitCode, ZtError} from '../../errors.js'
import {checkTokenUsable, tokenUsedError} from './errors.js'
import type {
  AgentStatusRecord, CertRecord, IdentityRecord, NewIdentity, Principal, ResourceListing, Store,
} from './store.js'

/** Ordered migrations; schema_version says how many ran. Append only, never edit a shipped one. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE identities (
     id TEXT PRIMARY KEY, name TEXT NOT NULL, spiffe TEXT NOT NULL, roles TEXT NOT NULL,
     admin INTEGER NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, enrolled_at TEXT, revoked_at TEXT,
     token_id TEXT NOT NULL UNIQUE, token_expires_at TEXT NOT NULL);
   CREATE UNIQUE INDEX identities_live_name ON identities(name) WHERE status <> 'revoked';
   CREATE TABLE certs (
     serial TEXT PRIMARY KEY, identity_id TEXT NOT NULL REFERENCES identities(id),
     not_before TEXT NOT NULL, not_after TEXT NOT NULL);
   CREATE INDEX certs_identity ON certs(identity_id);
   CREATE TABLE resources (kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, revision INTEGER NOT NULL,
     PRIMARY KEY (kind, key));
   CREATE TABLE changes (revision INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
     op TEXT NOT NULL, value TEXT, PRIMARY KEY (revision, seq));
   CREATE TABLE agent_status (name TEXT PRIMARY KEY, acked_version INTEGER, last_seen TEXT);`,
  `ALTER TABLE agent_status ADD COLUMN resources TEXT;
   ALTER TABLE agent_status ADD COLUMN software TEXT;`,
  // What an identity may act for (IdentityScope as JSON), e.g. the node a Kubernetes node agent is bound to.
  'ALTER TABLE identities ADD COLUMN scope TEXT;',
  // Every signed certificate with its owner: 'workload' ones are minted by a node (revoked with it, never API credentials).
  `ALTER TABLE certs ADD COLUMN usage TEXT NOT NULL DEFAULT 'identity';
   ALTER TABLE certs ADD COLUMN spiffe TEXT;
   UPDATE certs SET spiffe = (SELECT spiffe FROM identities WHERE identities.id = certs.identity_id);`,
]

/** How many revisions of the change log to keep; an agent further behind gets a snapshot. */
export const CHANGE_LOG_REVISIONS = 10_000

interface IdentityRow {
  admin: number
  created_at: string
  enrolled_at: null | string
  id: string
  name: string
  revoked_at: null | string
  roles: string
  scope: null | string
  spiffe: string
  status: IdentityRecord['status']
  token_expires_at: string
}

interface CertRow {
  cert_spiffe: string
  identity_id: string
  not_after: string
  not_before: string
  serial: string
  usage: CertRecord['usage']
}

export interface SqliteStoreOptions {
  /** keep this many revisions in the change log (tests use a small number) */
  changeLogRevisions?: number
  /**
   * FULL (default): every commit is on disk before it returns. OFF only for bulk loads into a store no
   * controller runs on (the fan-out benchmark fills 100,000 workloads): commits skip fsync.
   */
  synchronous?: 'FULL' | 'OFF'
}

/**
 * node:sqlite warns once, when first loaded, that it is experimental; we pin the Node major that ships it
 * and test it, so the warning would only confuse operators. Only that one warning is dropped.
 */
async function importSqlite(): Promise<typeof import('node:sqlite')> {
  const emitWarning = process.emitWarning
  process.emitWarning = ((warning: Error | string, ...rest: unknown[]) => {
    const text = typeof warning === 'string' ? warning : warning.message
    if (text.includes('SQLite is an experimental feature')) return
    return (emitWarning as (...args: unknown[]) => void).call(process, warning, ...rest)
  }) as typeof process.emitWarning
  try {
    return await import('node:sqlite')
  } finally {
    process.emitWarning = emitWarning
  }
}

/** Open (creating and migrating when needed) the store in DIR/store.db. */
export async function openSqliteStore(dir: string, options: SqliteStoreOptions = {}): Promise<Store> {
  const {DatabaseSync} = await importSqlite()
  await mkdir(dir, {recursive: true, mode: 0o700})
  const file = path.join(dir, 'store.db')
  const synchronous = options.synchronous === 'OFF' ? 'OFF' : 'FULL'
  let db: DatabaseSync
  try {
    await makePrivate(file)
    db = new DatabaseSync(file, {timeout: 5000})
    db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = ${synchronous}; PRAGMA foreign_keys = ON;`)
    migrate(db)
  } catch (error) {
    throw new ZtError('ZT_ERR_STORE', `cannot open the controller store ${file}: ${(error as Error).message}`, {
      cause: error,
      suggestion: 'check the --data-dir permissions; `sqlite3 store.db "PRAGMA integrity_check"` tells whether the file is damaged',
    })
  }

  return new SqliteStore(db, options.changeLogRevisions ?? CHANGE_LOG_REVISIONS, synchronous)
}

/**
 * The store holds every identity and token: 0600 whatever the folder's mode (an existing --data-dir may be
 * 0755) or the umask. SQLite creates its -wal and -shm files with the database file's mode; older stores
 * are tightened too.
 */
async function makePrivate(file: string): Promise<void> {
  await (await open(file, 'a', 0o600)).close()
  for (const name of [file, `${file}-wal`, `${file}-shm`]) {
    await chmod(name, 0o600).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error
    })
  }
}

function migrate(db: DatabaseSync): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)')
  const row = db.prepare('SELECT version FROM schema_version').get() as undefined | {version: number}
  const current = row?.version ?? 0
  if (current > MIGRATIONS.length) {
    throw new Error(`the store has schema version ${current}, newer than this ztctl (${MIGRATIONS.length}); upgrade ztctl`)
  }

  for (let version = current; version < MIGRATIONS.length; version++) {
    db.exec('BEGIN IMMEDIATE')
    try {
      db.exec(MIGRATIONS[version])
      db.exec('DELETE FROM schema_version')
      db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(version + 1)
      db.exec('COMMIT')
    } catch (error) {
      db.exec('ROLLBACK')
      throw error
    }
  }
}

const toIdentity = (row: IdentityRow): IdentityRecord => ({
  admin: row.admin === 1,
  createdAt: row.created_at,
  enrolledAt: row.enrolled_at ?? undefined,
  id: row.id,
  name: row.name,
  revokedAt: row.revoked_at ?? undefined,
  roles: JSON.parse(row.roles) as string[],
  ...(row.scope ? {scope: JSON.parse(row.scope) as IdentityRecord['scope']} : {}),
  spiffe: row.spiffe,
  status: row.status,
  tokenExpiresAt: row.token_expires_at,
})

const toCert = (row: CertRow): CertRecord => ({
  identityId: row.identity_id,
  notAfter: row.not_after,
  notBefore: row.not_before,
  serial: row.serial,
  spiffe: row.cert_spiffe,
  usage: row.usage,
})

/** The certs columns under names that do not clash with the identities' when joined. */
const CERT_COLUMNS = 'c.serial, c.identity_id, c.not_before, c.not_after, c.usage, c.spiffe AS cert_spiffe'

const notFound = (what: string): ZtError =>
  new ZtError('ZT_ERR_NOT_FOUND', `${what} does not exist`, {exit: ExitCode.notFound})

interface PendingStatus {
  reject: (error: unknown) => void
  resolve: () => void
  status: AgentStatusRecord
}

class SqliteStore implements Store {
  readonly backend = 'sqlite'
  private readonly commits = new EventEmitter()
  /** agent statuses waiting for the next batch (one transaction, one fsync, for every ack of a loop turn) */
  private pendingStatuses: PendingStatus[] = []

  constructor(
    private readonly db: DatabaseSync,
    private readonly changeLogRevisions: number,
    private readonly synchronous: 'FULL' | 'OFF',
  ) {
    // One listener per connected agent; the count is bounded by the server's stream limit instead.
    this.commits.setMaxListeners(0)
  }

  async close(): Promise<void> {
    this.flushAgentStatuses()
    if (this.db.isOpen) this.db.close()
  }

  async getMeta(key: string): Promise<string | undefined> {
    return this.meta(key)
  }

  async setMeta(key: string, value: string): Promise<void> {
    this.transaction(() => this.writeMeta(key, value))
  }

  async createIdentity(identity: NewIdentity): Promise<IdentityRecord> {
    const createdAt = new Date().toISOString()
    const version = this.transaction(() => {
      const taken = this.db.prepare("SELECT 1 FROM identities WHERE name = ? AND status <> 'revoked'").get(identity.name)
      if (taken) {
        throw new ZtError('ZT_ERR_NAME_TAKEN', `an identity named "${identity.name}" already exists`, {
          exit: ExitCode.conflict,
          suggestion: `pick another name, or delete the old one first with \`ztctl identity delete ${identity.name}\``,
        })
      }

      this.db
        .prepare(`INSERT INTO identities (id, name, spiffe, roles, admin, status, created_at, token_id, token_expires_at, scope)
                  VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)`)
        .run(identity.id, identity.name, identity.spiffe, JSON.stringify(identity.roles), identity.admin ? 1 : 0,
          createdAt, identity.tokenId, identity.tokenExpiresAt, identity.scope ? JSON.stringify(identity.scope) : null)
      return this.commitChanges([{
        key: identity.name, kind: 'identity', op: 'put',
        value: {name: identity.name, roles: identity.roles, spiffe: identity.spiffe},
      }])
    })
    this.notify(version)
    return (await this.getIdentity(identity.name))!
  }

  async getIdentity(name: string): Promise<IdentityRecord | undefined> {
    const row = this.db.prepare("SELECT * FROM identities WHERE name = ? AND status <> 'revoked'").get(name)
    return row ? toIdentity(row as unknown as IdentityRow) : undefined
  }

  async listIdentities(): Promise<IdentityRecord[]> {
    const rows = this.db.prepare("SELECT * FROM identities WHERE status <> 'revoked' ORDER BY name").all()
    return rows.map((row) => toIdentity(row as unknown as IdentityRow))
  }

  async findToken(tokenId: string): Promise<{identity: IdentityRecord; used: boolean} | undefined> {
    const row = this.db.prepare('SELECT * FROM identities WHERE token_id = ?').get(tokenId)
    if (!row) return undefined
    const identity = toIdentity(row as unknown as IdentityRow)
    return {identity, used: identity.status !== 'pending'}
  }

  async completeEnrollment(tokenId: string, cert: CertRecord, now: Date): Promise<IdentityRecord> {
    const name = this.transaction(() => {
      const row = this.db.prepare('SELECT * FROM identities WHERE token_id = ?').get(tokenId) as IdentityRow | undefined
      if (!row) throw new ZtError('ZT_ERR_TOKEN_INVALID', 'the enrollment token is not known to this controller', {exit: ExitCode.auth})
      checkTokenUsable({name: row.name, status: row.status, tokenExpiresAt: row.token_expires_at}, now)
      // The conditional update is what makes the token one-time, even against a concurrent enrollment.
      const result = this.db
        .prepare("UPDATE identities SET status = 'active', enrolled_at = ? WHERE id = ? AND status = 'pending'")
        .run(now.toISOString(), row.id)
      if (result.changes !== 1) throw tokenUsedError(row.name)
      this.insertCert({...cert, identityId: row.id})
      return row.name
    })
    return (await this.getIdentity(name))!
  }

  async recordCert(cert: CertRecord): Promise<void> {
    this.transaction(() => {
      const row = this.db.prepare('SELECT name, status FROM identities WHERE id = ?').get(cert.identityId) as undefined | {name: string; status: string}
      if (row?.status !== 'active') {
        throw new ZtError('ZT_ERR_REVOKED', `identity "${row?.name ?? cert.identityId}" is not active (deleted meanwhile?); the certificate is not handed out`, {exit: ExitCode.auth})
      }

      this.insertCert(cert)
    })
  }

  async authenticate(serial: string, now: Date): Promise<Principal | undefined> {
    const row = this.db
      .prepare(`SELECT ${CERT_COLUMNS}, i.*
                FROM certs c JOIN identities i ON i.id = c.identity_id
                WHERE c.serial = ? AND c.usage = 'identity' AND i.status = 'active' AND c.not_after > ?`)
      .get(serial.toUpperCase(), now.toISOString())
    if (!row) return undefined
    return {cert: toCert(row as unknown as CertRow), identity: toIdentity(row as unknown as IdentityRow)}
  }

  async revokeIdentity(name: string, now: Date): Promise<{identity: IdentityRecord; revoked: CertRecord[]; version: number}> {
    const nowIso = now.toISOString()
    const result = this.transaction(() => {
      const row = this.db.prepare("SELECT * FROM identities WHERE name = ? AND status <> 'revoked'").get(name) as IdentityRow | undefined
      if (!row) throw notFound(`identity "${name}"`)
      this.db.prepare("UPDATE identities SET status = 'revoked', revoked_at = ? WHERE id = ?").run(nowIso, row.id)
      const certs = (this.db.prepare(`SELECT ${CERT_COLUMNS} FROM certs c WHERE c.identity_id = ? AND c.not_after > ?`).all(row.id, nowIso) as unknown as CertRow[])
        .map((cert) => toCert(cert))
      const changes: Change[] = certs.map((cert) => ({
        key: cert.serial, kind: 'revocation', op: 'put',
        value: {identity: name, notAfter: cert.notAfter, serial: cert.serial, spiffe: cert.spiffe ?? row.spiffe},
      }))
      // Revocations of certificates that have expired since are noise: drop them in the same revision.
      for (const key of this.expiredRevocationKeys(nowIso)) changes.push({key, kind: 'revocation', op: 'delete'})
      if (this.resourceExists('identity', name)) changes.push({key: name, kind: 'identity', op: 'delete'})
      const version = this.commitChanges(changes)
      return {identity: toIdentity({...row, revoked_at: nowIso, status: 'revoked'}), revoked: certs, version}
    })
    this.notify(result.version)
    return result
  }

  async currentVersion(): Promise<number> {
    return this.revision()
  }

  async listResources<K extends ResourceKind>(kind: K): Promise<ResourceListing<K>> {
    return this.read(() => {
      const rows = this.db.prepare('SELECT value FROM resources WHERE kind = ? ORDER BY key').all(kind) as {value: string}[]
      return {items: rows.map((row) => JSON.parse(row.value) as ResourceKinds[K]), version: this.revision()}
    })
  }

  async getResource<K extends ResourceKind>(kind: K, key: string): Promise<ResourceKinds[K] | undefined> {
    const row = this.db.prepare('SELECT value FROM resources WHERE kind = ? AND key = ?').get(kind, key) as undefined | {value: string}
    return row ? (JSON.parse(row.value) as ResourceKinds[K]) : undefined
  }

  async putResource<K extends ResourceKind>(kind: K, key: string, value: ResourceKinds[K]): Promise<number> {
    const json = JSON.stringify(value)
    // Unchanged (every agent re-puts its own resource on each resubscribe): no write transaction at all.
    const unchanged = (): boolean => (this.db.prepare('SELECT value FROM resources WHERE kind = ? AND key = ?').get(kind, key) as undefined | {value: string})?.value === json
    if (unchanged()) return this.revision()
    let changed = false
    const version = this.transaction(() => {
      if (unchanged()) return this.revision()
      changed = true
      return this.commitChanges([{key, kind, op: 'put', value} as Change])
    })
    if (changed) this.notify(version)
    return version
  }

  async deleteResource(kind: ResourceKind, key: string): Promise<number> {
    const version = this.transaction(() => {
      if (!this.resourceExists(kind, key)) throw notFound(`${kind} "${key}"`)
      return this.commitChanges([{key, kind, op: 'delete'}])
    })
    this.notify(version)
    return version
  }

  async snapshot(): Promise<{resources: ConfigSnapshot; version: number}> {
    return this.read(() => {
      const resources = emptySnapshot()
      const rows = this.db.prepare('SELECT kind, key, value FROM resources').all() as {key: string; kind: ResourceKind; value: string}[]
      for (const row of rows) {
        const table = resources[row.kind] as Record<string, unknown> | undefined
        if (table) table[row.key] = JSON.parse(row.value)
      }

      return {resources, version: this.revision()}
    })
  }

  async changesSince(since: number): Promise<{changes: Change[]; version: number} | undefined> {
    return this.read(() => {
      const version = this.revision()
      const floor = Number(this.meta('log_floor') ?? 0)
      if (!Number.isSafeInteger(since) || since < floor || since > version) return undefined
      const rows = this.db
        .prepare('SELECT kind, key, op, value FROM changes WHERE revision > ? ORDER BY revision, seq')
        .all(since) as {key: string; kind: ResourceKind; op: 'delete' | 'put'; value: null | string}[]
      const changes = rows.map((row): Change => row.op === 'delete'
        ? {key: row.key, kind: row.kind, op: 'delete'}
        : {key: row.key, kind: row.kind, op: 'put', value: JSON.parse(row.value!)} as Change)
      return {changes, version}
    })
  }

  onCommit(listener: (version: number) => void): () => void {
    this.commits.on('commit', listener)
    return () => this.commits.off('commit', listener)
  }

  async sweepExpired(now: Date): Promise<number> {
    let changed = false
    const version = this.transaction(() => {
      const keys = this.expiredRevocationKeys(now.toISOString())
      if (keys.length === 0) return this.revision()
      changed = true
      return this.commitChanges(keys.map((key) => ({key, kind: 'revocation', op: 'delete'})))
    })
    if (changed) this.notify(version)
    return version
  }

  async recordAgentStatus(status: AgentStatusRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pendingStatuses.push({reject, resolve, status})
      if (this.pendingStatuses.length === 1) setImmediate(() => this.flushAgentStatuses())
    })
  }

  async listAgentStatus(): Promise<AgentStatusRecord[]> {
    this.flushAgentStatuses()
    const rows = this.db.prepare('SELECT * FROM agent_status ORDER BY name').all() as {
      acked_version: null | number; last_seen: null | string; name: string; resources: null | string; software: null | string
    }[]
    return rows.map((row) => ({
      ackedVersion: row.acked_version ?? undefined, lastSeen: row.last_seen ?? undefined, name: row.name,
      resources: row.resources ? (JSON.parse(row.resources) as AgentStatusRecord['resources']) : undefined, software: row.software ?? undefined,
    }))
  }

  // ---- helpers (all run on the one connection, synchronously) ----

  /** Store the waiting agent statuses in one transaction, in arrival order (each merges as recordAgentStatus says). */
  private flushAgentStatuses(): void {
    const batch = this.pendingStatuses
    if (batch.length === 0) return
    this.pendingStatuses = []
    try {
      if (!this.db.isOpen) throw new ZtError('ZT_ERR_STORE', 'the controller store is closed')
      const upsert = this.db.prepare(`INSERT INTO agent_status (name, acked_version, last_seen, resources, software) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET acked_version = coalesce(excluded.acked_version, acked_version),
                                                last_seen = coalesce(excluded.last_seen, last_seen),
                                                resources = coalesce(excluded.resources, resources),
                                                software = coalesce(excluded.software, software)`)
      this.softTransaction(() => {
        for (const {status} of batch) {
          upsert.run(status.name, status.ackedVersion ?? null, status.lastSeen ?? null, status.resources ? JSON.stringify(status.resources) : null, status.software ?? null)
        }
      })
    } catch (error) {
      for (const pending of batch) pending.reject(error)
      return
    }

    for (const pending of batch) pending.resolve()
  }

  private meta(key: string): string | undefined {
    return (this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as undefined | {value: string})?.value
  }

  private writeMeta(key: string, value: string): void {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value)
  }

  private revision(): number {
    return Number(this.meta('revision') ?? 0)
  }

  private resourceExists(kind: ResourceKind, key: string): boolean {
    return this.db.prepare('SELECT 1 FROM resources WHERE kind = ? AND key = ?').get(kind, key) !== undefined
  }

  private expiredRevocationKeys(nowIso: string): string[] {
    const rows = this.db.prepare("SELECT key, value FROM resources WHERE kind = 'revocation'").all() as {key: string; value: string}[]
    return rows.filter((row) => (JSON.parse(row.value) as ResourceKinds['revocation']).notAfter <= nowIso).map((row) => row.key)
  }

  private insertCert(cert: CertRecord): void {
    this.db.prepare('INSERT INTO certs (serial, identity_id, not_before, not_after, usage, spiffe) VALUES (?, ?, ?, ?, ?, ?)')
      .run(cert.serial.toUpperCase(), cert.identityId, cert.notBefore, cert.notAfter, cert.usage, cert.spiffe)
  }

  /** Apply changes inside the current transaction as ONE new revision and log them; returns it. */
  private commitChanges(changes: readonly Change[]): number {
    const revision = this.revision() + 1
    const insertChange = this.db.prepare('INSERT INTO changes (revision, seq, kind, key, op, value) VALUES (?, ?, ?, ?, ?, ?)')
    for (const [seq, change] of changes.entries()) {
      if (change.op === 'delete') {
        this.db.prepare('DELETE FROM resources WHERE kind = ? AND key = ?').run(change.kind, change.key)
        insertChange.run(revision, seq, change.kind, change.key, 'delete', null)
      } else {
        const value = JSON.stringify(change.value)
        this.db
          .prepare(`INSERT INTO resources (kind, key, value, revision) VALUES (?, ?, ?, ?)
                    ON CONFLICT(kind, key) DO UPDATE SET value = excluded.value, revision = excluded.revision`)
          .run(change.kind, change.key, value, revision)
        insertChange.run(revision, seq, change.kind, change.key, 'put', value)
      }
    }

    this.writeMeta('revision', String(revision))
    const floor = revision - this.changeLogRevisions
    if (floor > 0) {
      this.db.prepare('DELETE FROM changes WHERE revision <= ?').run(floor)
      this.writeMeta('log_floor', String(floor))
    }

    return revision
  }

  private transaction<T>(work: () => T): T {
    this.db.exec('BEGIN IMMEDIATE')
    try {
      const result = work()
      this.db.exec('COMMIT')
      return result
    } catch (error) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK')
      throw error
    }
  }

  /**
   * A transaction of soft state (agent statuses: every agent reports again when it resubscribes) that
   * skips the fsync: WAL with synchronous=NORMAL keeps the file consistent, and the next FULL commit's
   * fsync of the WAL takes these frames along. Configuration commits keep synchronous=FULL.
   */
  private softTransaction<T>(work: () => T): T {
    if (this.synchronous === 'OFF') return this.transaction(work)
    this.db.exec('PRAGMA synchronous = NORMAL')
    try {
      return this.transaction(work)
    } finally {
      this.db.exec(`PRAGMA synchronous = ${this.synchronous}`)
    }
  }

  /** A consistent multi-statement read. */
  private read<T>(work: () => T): T {
    this.db.exec('BEGIN')
    try {
      return work()
    } finally {
      this.db.exec('COMMIT')
    }
  }

  private notify(version: number): void {
    this.commits.emit('commit', version)
  }
}

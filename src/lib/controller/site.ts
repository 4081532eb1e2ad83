// Where a controller keeps what it needs besides serving: its store, its CA, the admin identity for
// the CLI, and who among its replicas runs the background writers. Two sites: a data dir on this host
// (SQLite, CA files, admin.json and a CLI context; one process, always the leader) and a Kubernetes
// namespace (site-kube.ts). startController is the same code over either.
import path from 'node:path'

import {upsertContext} from '../home/contexts.js'
import {defaultControllerDataDir, type Home, identitiesDir, makeDir} from '../home/home.js'
import {adminFile, type AdminHome, type KeptIdentity} from './admin.js'
import {type ControllerCA, loadOrCreateCA} from './ca.js'
import {lockDataDir} from './lock.js'
import type {Logger} from './logger.js'
import type {KubeMesh} from './kube-mesh.js'
import type {NodeAgentAuthority} from './routes/types.js'
import {openSqliteStore} from './store/sqlite.js'
import type {Store} from './store/store.js'

export interface Leadership {
  readonly isLeader: boolean
  /** a short description for logs and /ready: the Lease and its holder */
  describe(): Record<string, unknown>
  stop(): Promise<void>
}

export interface ControllerSite {
  readonly kind: 'kubernetes' | 'sqlite'
  readonly admin: AdminHome
  /** what the banner shows about where the state lives */
  readonly describe: Record<string, string>
  readonly store: Store
  /** identities the leader keeps valid beside the admin (in a cluster: the host pod's `host` in Secret ztctl-host) */
  readonly keptIdentities?: {home: AdminHome; identity: KeptIdentity}[]
  /** the cluster's pods as workloads, and the node-bound authority over them (Kubernetes only) */
  readonly mesh?: KubeMesh
  /** the node-agent enrollment with ServiceAccount tokens (Kubernetes only) */
  readonly nodeAgents?: NodeAgentAuthority
  loadCA(trustDomain: string): Promise<ControllerCA & {created: boolean}>
  /** compete for leadership; the callbacks start and stop the background writers */
  lead(events: {onStart(): void; onStop(): void}): Leadership
  /** the controller serves at `url` now: tell the CLI (local: write the context) */
  announce(url: string, adminCreated: boolean): Promise<void>
  close(): Promise<void>
}

export interface LocalSiteOptions {
  caImport?: {certFile: string; keyFile: string}
  contextName: string
  dataDir?: string
  home: Home
  logger: Logger
  openStore?: (dataDir: string) => Promise<Store>
}

/** One controller process on a data dir (locked), SQLite, CA files, admin.json and a CLI context. */
export async function openLocalSite(options: LocalSiteOptions): Promise<ControllerSite & {dataDir: string}> {
  const dataDir = path.resolve(options.dataDir ?? defaultControllerDataDir(options.home))
  await makeDir(dataDir, 0o700)
  const lock = await lockDataDir(dataDir)
  let store: Store
  try {
    store = await (options.openStore ?? openSqliteStore)(dataDir)
  } catch (error) {
    await lock.release()
    throw error
  }

  const admin: AdminHome = adminFile(path.join(identitiesDir(options.home), 'admin.json'))
  return {
    admin,
    announce: (url, adminCreated) => upsertContext(options.home, {controller: url, controllerDataDir: dataDir, identity: admin.location, name: options.contextName}, adminCreated),
    async close() {
      await store.close().catch(() => {})
      await lock.release()
    },
    dataDir,
    describe: {'data dir': dataDir},
    kind: 'sqlite',
    lead(events) {
      events.onStart()
      return {describe: () => ({leader: true}), isLeader: true, stop: async () => events.onStop()}
    },
    loadCA: (trustDomain) => loadOrCreateCA({dataDir, importFrom: options.caImport, trustDomain}),
    store,
  }
}

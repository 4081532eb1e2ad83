// Which engine moves the agent's bytes (`--data-path auto|native|node`), and the HBONE client pool and
// server built on it: the C data path when its addon loads (or is demanded), else node:http2 + node:net.
// Hubs (`--hub`) ride the native engine only: their links are built here, between server and pool.
import {ExitCode, ZtError} from '../../errors.js'
import type {HboneEngine} from '../hbone/hbone-engine.js'
import {HbonePool} from '../hbone/hbone-pool.js'
import {HubLinks, type HubLinksOptions} from '../hbone/hub-links.js'
import {NativeHbonePool} from '../hbone/native-pool.js'
import {NativeContexts} from '../hbone/native-tls.js'
import type {Credentials} from '../hbone/tls.js'
import type {Logger} from '../observe/log.js'
import type {Metrics} from '../observe/metrics.js'
import type {AppStreamHandler} from '../paths/app-streams.js'
import type {ConnectionTracker} from '../paths/connection.js'
import {HboneServer} from '../paths/hbone-server.js'
import {NativeHboneServer} from '../paths/native-server.js'
import type {InboundOptions} from '../paths/tunnel-inbound.js'
import type {MeshState} from '../state/state.js'

export type DataPathChoice = 'auto' | 'native' | 'node'

/** Streams one pooled HBONE session carries at once, on either engine. */
export const MAX_STREAMS_PER_SESSION = 100

/** Pool and server timers; tests shorten them. */
export interface DataPathTiming {
  idleTimeoutMs?: number
  keepaliveIntervalMs?: number
  keepaliveTimeoutMs?: number
}

/** What the HBONE server and the inbound tunnels share: the mesh view, accounting and logs (and the timers). */
export interface TrafficContext extends DataPathTiming {
  /** the agent's app host, once an app is enabled (app streams end there, not at a dialled target) */
  apps?: () => AppStreamHandler | undefined
  logger: () => Logger
  metrics: Metrics
  state: () => MeshState
  tracker: ConnectionTracker
}

export interface DataPathParts {
  /** the address other agents dial */
  advertise: () => string
  /** `--hub` addresses and what the links need from the agent */
  hubs?: Pick<HubLinksOptions, 'addresses' | 'isHub' | 'onChange' | 'selfName' | 'timing'>
  common: TrafficContext
  credentials: Credentials
  isRevoked: (serial: string) => boolean
  /** where an `auto` fallback to node is warned about */
  logger: Logger
  sourceSpiffe: () => string
  timing: DataPathTiming
}

export interface DataPath {
  /** the pool (and, native, the engine) the inbound tunnels dial through */
  client: InboundOptions['dataPath']
  /** the native engine's TLS contexts, freed at shutdown; undefined on the node path */
  contexts?: NativeContexts
  /** the hub connections (native path, with --hub) */
  hubs?: HubLinks
  /** where other agents' HBONE CONNECTs arrive */
  server: HboneServer | NativeHboneServer
}

export async function buildDataPath(choice: DataPathChoice, parts: DataPathParts): Promise<DataPath> {
  const {advertise, common, credentials, isRevoked, sourceSpiffe, timing} = parts
  const engine = await loadEngine(choice, parts.logger)
  if (!engine) {
    if (parts.hubs && parts.hubs.addresses.length > 0) {
      throw new ZtError('ZT_ERR_USAGE', 'hubs (--hub) need the native data path, which is not in use here', {
        exit: ExitCode.usage,
        suggestion: 'start the agent with --data-path native (build the addon with `npm run build`), or without --hub',
      })
    }

    return {
      client: {kind: 'node', pool: new HbonePool({credentials, isRevoked, maxStreamsPerSession: MAX_STREAMS_PER_SESSION, ...timing})},
      server: new HboneServer({...common, advertise, credentials}),
    }
  }

  const native = {contexts: new NativeContexts(engine, credentials), engine}
  const server = new NativeHboneServer({...common, ...native, advertise, selfSpiffe: sourceSpiffe})
  const hubs = parts.hubs && parts.hubs.addresses.length > 0
    ? new HubLinks({...native, ...parts.hubs, listenerId: server.virtualListener(), logger: common.logger})
    : undefined
  return {
    client: {engine, kind: 'native', pool: new NativeHbonePool({...native, hubs, isRevoked, maxStreamsPerSession: MAX_STREAMS_PER_SESSION, sourceSpiffe, ...timing})},
    contexts: native.contexts,
    hubs,
    server,
  }
}

/** The native engine for `native` (a ZtError when it cannot load), `auto` (undefined, with a warning), or none for `node`. */
async function loadEngine(choice: DataPathChoice, logger: Logger): Promise<HboneEngine | undefined> {
  if (choice === 'node') return undefined
  const {HboneEngine} = await import('../hbone/hbone-engine.js')
  try {
    return HboneEngine.get()
  } catch (error) {
    if (choice === 'native') throw error
    logger.warn({error: (error as Error).message}, 'native data path unavailable; using the node:http2 one')
    return undefined
  }
}

// The CNI agent of a node (DaemonSet ztctl-cni, host network, privileged). It installs the ztctl plugin
// (build/Release/ztctl-cni) into the node's plugin directory and chains it into the node's primary
// .conflist (and chains it again when the primary CNI rewrites its file); it answers the plugin on
// `<run dir>/cni.sock` (src/lib/cni/pod-redirector.ts decides and redirects); it reconciles the node's pods
// every few seconds. Ready while the plugin is chained. On stop it tells an uninstall (its DaemonSet gone
// or being deleted: every pod back to plain networking, the configuration restored byte for byte, the
// plugin removed) from a restart (pods stay redirected; the plugin passes pods through until it is back).
import {once} from 'node:events'
import {type FSWatcher, watch} from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import type {EnrollmentOptions} from '../kube/enrollment.js'
import type {Logger} from '../log/logger.js'
import type {HostPort} from '../proxy/address.js'
import type {BackendRequest} from '../redirect/backend.js'
import {serialized} from '../util/serialized.js'
import {chainPlugin, installPluginBinary, removePluginBinary, unchainPlugin} from './chain.js'
import {type CniFindings, checkCniNode} from './node-check.js'
import {type NodePods, nodePods} from './node-pods.js'
import {CNI_PLUGIN_TYPE} from './plugin-protocol.js'
import {type PluginServer, servePluginSocket} from './plugin-server.js'
import {PodRedirector} from './pod-redirector.js'

export const PLUGIN_SOURCE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../build/Release/ztctl-cni')
export const CNI_SOCKET_NAME = 'cni.sock'
export const INPOD_SOCKET_NAME = 'inpod.sock'
export const INPOD_STATE_NAME = 'inpod'
const CHAIN_POLL_MS = 30_000
// a rewrite is a few events (create, write, rename): one look after they settle
const WATCH_SETTLE_MS = 50

export interface CniAgentOptions {
  binDir: string
  confDir: string
  /** the host directory shared with the node agent and the plugin (mounted at the same path) */
  runDir: string
  /** where the container runtime keeps pods' network namespaces (mounted at the same path) */
  netnsDir: string
  node: string
  daemonSet: {name: string; namespace: string}
  enrollment?: EnrollmentOptions
  backend?: BackendRequest
  kubeconfig?: string
  /** how often to look at the configuration again although no change was seen (re-chain), default 30 s */
  intervalMs?: number
  /** how often to reconcile the node's pods, default 5 s */
  reconcileMs?: number
  logger: Logger
  readiness: HostPort
  /** the API side (tests of the agent outside a pod give their own kubeconfig instead) */
  pods?: NodePods
}

/** What the agent found on the node, and the file it chained the plugin into. */
type Findings = CniFindings & {chained?: string}

export interface CniAgent {
  address: HostPort
  /** stop; an uninstall (or FORCE 'uninstall') undoes everything, a restart keeps pods redirected */
  close(force?: 'restart' | 'uninstall'): Promise<'restart' | 'uninstall'>
  findings(): Findings
  reconcile(): ReturnType<PodRedirector['reconcile']>
}

export async function startCniAgent(options: CniAgentOptions): Promise<CniAgent> {
  const {logger} = options
  const pods = options.pods ?? (await nodePods({daemonSet: options.daemonSet, kubeconfig: options.kubeconfig, node: options.node}))
  const chain = new PluginChain(options, await checkCniNode(options.confDir, options.binDir))
  const redirector = new PodRedirector({
    agentSocket: path.join(options.runDir, INPOD_SOCKET_NAME), backend: options.backend, enrollment: options.enrollment, logger,
    netnsDir: options.netnsDir, pods, stateDir: path.join(options.runDir, INPOD_STATE_NAME),
  })
  await installPluginBinary(PLUGIN_SOURCE, options.binDir)
  const plugin: PluginServer = await servePluginSocket(chain.entry.socket, (request) => redirector.handle(request), (message, fields) => logger.warn(fields, message))
  await chain.start()
  const reconciler = reconcileEvery(redirector, logger, options.reconcileMs ?? 5000)
  const readiness = await serveReadiness(options.readiness, () => chain.findings)
  logger.info({node: options.node, readiness: `${readiness.address.host}:${readiness.address.port}`, socket: chain.entry.socket}, 'CNI agent started')
  return {
    address: readiness.address,
    async close(force) {
      reconciler.stop()
      await chain.stop()
      await readiness.close()
      await reconciler.settled()
      const mode = force ?? ((await pods.daemonSetLive().catch(() => true)) ? 'restart' : 'uninstall')
      await plugin.close()
      if (mode === 'uninstall') await uninstall(options, chain, redirector)
      else logger.info({}, 'stopping for a restart: the plugin stays chained, pods stay redirected')
      return mode
    },
    findings: () => chain.findings,
    reconcile: () => redirector.reconcile(),
  }
}

/** Undo the node: the plugin first, so no new pod is redirected while the others are taken out. */
async function uninstall(options: CniAgentOptions, chain: PluginChain, redirector: PodRedirector): Promise<void> {
  const unchained = await chain.unchain()
  await removePluginBinary(options.binDir)
  const removed = await redirector.removeAll()
  options.logger.info({conflist: unchained, pods: removed}, 'uninstalled: configuration restored, pods back to plain networking')
}

/**
 * The plugin chained into the node's primary .conflist, and kept there: a change in the conf dir re-chains
 * at once (a primary CNI rewriting its file); the slow poll is the safety net.
 */
class PluginChain {
  readonly entry: {socket: string; type: string}
  private readonly stateDir: string
  private lastReport = ''
  private readonly rechain = serialized(async () => {
    await this.ensureChained()
    this.report()
  })

  private watcher: ReturnType<typeof watchDir> | undefined
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly options: Pick<CniAgentOptions, 'binDir' | 'confDir' | 'intervalMs' | 'logger' | 'runDir'>, public findings: Findings) {
    this.entry = {socket: path.join(options.runDir, CNI_SOCKET_NAME), type: CNI_PLUGIN_TYPE}
    this.stateDir = path.join(options.runDir, 'cni')
  }

  /** Chain now, then watch the conf dir and poll it. */
  async start(): Promise<void> {
    await this.ensureChained()
    this.report()
    const {confDir, logger} = this.options
    const watcher = watchDir(confDir, () => void this.rechain(), (message) => logger.warn({dir: confDir}, message))
    this.watcher = watcher
    this.timer = setInterval(() => {
      watcher.ensure()
      void this.rechain()
    }, this.options.intervalMs ?? CHAIN_POLL_MS)
    this.timer.unref()
  }

  /** Stop watching; resolves when a re-chain in flight is done. */
  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.watcher?.close()
    await this.rechain.idle()
  }

  /** Restore the configuration (byte for byte); the file it restored, if any. */
  unchain(): ReturnType<typeof unchainPlugin> {
    return unchainPlugin({confDir: this.options.confDir, stateDir: this.stateDir})
  }

  private async ensureChained(): Promise<void> {
    const {binDir, confDir, logger} = this.options
    this.findings = await checkCniNode(confDir, binDir)
    if (this.findings.problems.length > 0) return
    try {
      const result = await chainPlugin({confDir, entry: this.entry, stateDir: this.stateDir})
      this.findings = {...this.findings, chained: result.file}
      if (result.changed) logger.info({file: result.file}, 'chained the ztctl CNI plugin')
    } catch (error) {
      this.findings = {...this.findings, problems: [(error as Error).message]}
    }
  }

  /** Log the findings when they changed. */
  private report(): void {
    const {findings, options: {logger}} = this
    const text = JSON.stringify(findings)
    if (text === this.lastReport) return
    this.lastReport = text
    if (findings.problems.length > 0) logger.warn({findings}, `node not ready for the CNI agent: ${findings.problems.join('; ')}`)
    else logger.info({findings}, `plugin chained into ${findings.chained}`)
  }
}

/** Reconcile the node's pods now and every MS (a round still running skips the tick); logs what changed. */
function reconcileEvery(redirector: PodRedirector, logger: Logger, ms: number): {settled(): Promise<unknown>; stop(): void} {
  let reconciling: Promise<unknown> | undefined
  const reconcile = async (): Promise<void> => {
    const result = await redirector.reconcile()
    if (result.added.length + result.removed.length + result.problems.length > 0) logger.info(result, 'reconciled the pods of this node')
  }

  const tick = (): void => {
    reconciling ??= reconcile().catch((error: unknown) => logger.warn({error: (error as Error).message}, 'reconcile failed')).finally(() => {
      reconciling = undefined
    })
  }

  tick()
  const timer = setInterval(tick, ms)
  timer.unref()
  return {
    settled: async () => reconciling,
    stop: () => clearInterval(timer),
  }
}

/** GET /healthz/ready on ADDRESS: 200 while the plugin is chained and the node has no problem, else 503. */
async function serveReadiness(address: HostPort, findings: () => Findings): Promise<{address: HostPort; close(): Promise<void>}> {
  const server = http.createServer((request, response) => {
    const current = findings()
    const ready = current.problems.length === 0 && current.chained !== undefined
    const known = request.url === '/healthz/ready'
    response.writeHead(known ? (ready ? 200 : 503) : 404, {'content-type': 'application/json'})
    response.end(known ? JSON.stringify({ready, ...current}) : '{"error":"not found"}')
  })
  server.listen(address.port, address.host)
  await once(server, 'listening')
  const bound = server.address() as {port: number}
  return {
    address: {host: address.host, port: bound.port},
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** Call ONCHANGE (settled) when DIR's entries change; a dir that cannot be watched yet is tried again by ensure(). */
function watchDir(dir: string, onChange: () => void, warn: (message: string) => void): {close(): void; ensure(): void} {
  let watcher: FSWatcher | undefined
  let settle: NodeJS.Timeout | undefined
  let closed = false
  let warned = false
  const changed = (): void => {
    clearTimeout(settle)
    settle = setTimeout(onChange, WATCH_SETTLE_MS)
    settle.unref()
  }

  const ensure = (): void => {
    if (watcher || closed) return
    try {
      watcher = watch(dir, {persistent: false}, changed)
      watcher.on('error', (error) => {
        warn(`watching the CNI configuration stopped (${error.message}); the poll goes on`)
        watcher?.close()
        watcher = undefined
      })
    } catch (error) {
      if (!warned) warn(`cannot watch the CNI configuration (${(error as Error).message}); polling until it can`)
      warned = true
    }
  }

  ensure()
  return {
    close() {
      closed = true
      clearTimeout(settle)
      watcher?.close()
    },
    ensure,
  }
}

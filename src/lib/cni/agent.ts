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

export interface CniAgent {
  address: HostPort
  /** stop; an uninstall (or FORCE 'uninstall') undoes everything, a restart keeps pods redirected */
  close(force?: 'restart' | 'uninstall'): Promise<'restart' | 'uninstall'>
  findings(): CniFindings & {chained?: string}
  reconcile(): ReturnType<PodRedirector['reconcile']>
}

export async function startCniAgent(options: CniAgentOptions): Promise<CniAgent> {
  const {logger} = options
  const pods = options.pods ?? (await nodePods({daemonSet: options.daemonSet, kubeconfig: options.kubeconfig, node: options.node}))
  const chainState = path.join(options.runDir, 'cni')
  const entry = {socket: path.join(options.runDir, CNI_SOCKET_NAME), type: CNI_PLUGIN_TYPE}
  let findings: CniFindings & {chained?: string} = await checkCniNode(options.confDir, options.binDir)
  let lastReport = ''
  const report = (): void => {
    const text = JSON.stringify(findings)
    if (text === lastReport) return
    lastReport = text
    if (findings.problems.length > 0) logger.warn({findings}, `node not ready for the CNI agent: ${findings.problems.join('; ')}`)
    else logger.info({findings}, `plugin chained into ${findings.chained}`)
  }

  const ensureChained = async (): Promise<void> => {
    findings = await checkCniNode(options.confDir, options.binDir)
    if (findings.problems.length > 0) return
    try {
      const result = await chainPlugin({confDir: options.confDir, entry, stateDir: chainState})
      findings = {...findings, chained: result.file}
      if (result.changed) logger.info({file: result.file}, 'chained the ztctl CNI plugin')
    } catch (error) {
      findings = {...findings, problems: [(error as Error).message]}
    }
  }

  const redirector = new PodRedirector({
    agentSocket: path.join(options.runDir, INPOD_SOCKET_NAME), backend: options.backend, enrollment: options.enrollment, logger,
    netnsDir: options.netnsDir, pods, stateDir: path.join(options.runDir, INPOD_STATE_NAME),
  })
  await installPluginBinary(PLUGIN_SOURCE, options.binDir)
  const plugin: PluginServer = await servePluginSocket(entry.socket, (request) => redirector.handle(request), (message, fields) => logger.warn(fields, message))
  await ensureChained()
  report()
  const reconcile = async (): ReturnType<PodRedirector['reconcile']> => {
    const result = await redirector.reconcile()
    if (result.added.length + result.removed.length + result.problems.length > 0) logger.info(result, 'reconciled the pods of this node')
    return result
  }

  let reconciling: Promise<unknown> | undefined
  const tick = (): void => {
    reconciling ??= reconcile().catch((error: unknown) => logger.warn({error: (error as Error).message}, 'reconcile failed')).finally(() => {
      reconciling = undefined
    })
  }

  tick()
  // a change in the conf dir re-chains at once (a primary CNI rewriting its file); the slow poll is the safety net
  const rechain = serialized(async () => {
    await ensureChained()
    report()
  })
  const confWatch = watchDir(options.confDir, () => void rechain(), (message) => logger.warn({dir: options.confDir}, message))
  const chainTimer = setInterval(() => {
    confWatch.ensure()
    void rechain()
  }, options.intervalMs ?? CHAIN_POLL_MS)
  chainTimer.unref()
  const reconcileTimer = setInterval(tick, options.reconcileMs ?? 5000)
  reconcileTimer.unref()

  const server = http.createServer((request, response) => {
    const ready = findings.problems.length === 0 && findings.chained !== undefined
    const known = request.url === '/healthz/ready'
    response.writeHead(known ? (ready ? 200 : 503) : 404, {'content-type': 'application/json'})
    response.end(known ? JSON.stringify({ready, ...findings}) : '{"error":"not found"}')
  })
  server.listen(options.readiness.port, options.readiness.host)
  await once(server, 'listening')
  const bound = server.address() as {port: number}
  logger.info({node: options.node, readiness: `${options.readiness.host}:${bound.port}`, socket: entry.socket}, 'CNI agent started')
  return {
    address: {host: options.readiness.host, port: bound.port},
    async close(force) {
      clearInterval(chainTimer)
      clearInterval(reconcileTimer)
      confWatch.close()
      await rechain.idle()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await reconciling
      const mode = force ?? ((await pods.daemonSetLive().catch(() => true)) ? 'restart' : 'uninstall')
      await plugin.close()
      if (mode === 'uninstall') {
        // The plugin first, so no new pod is redirected while the others are taken out.
        const unchained = await unchainPlugin({confDir: options.confDir, stateDir: chainState})
        await removePluginBinary(options.binDir)
        const removed = await redirector.removeAll()
        logger.info({conflist: unchained, pods: removed}, 'uninstalled: configuration restored, pods back to plain networking')
      } else {
        logger.info({}, 'stopping for a restart: the plugin stays chained, pods stay redirected')
      }

      return mode
    },
    findings: () => findings,
    reconcile: () => redirector.reconcile(),
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

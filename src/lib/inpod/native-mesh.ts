// The in-pod data path on the native engine: the addon adopts a pod's 15001, 15006 and 15008 listening
// sockets (made inside its namespace by the netns addon) and dials from sockets made there with the skip
// mark, so the bytes of pod → HBONE → pod, of plaintext into a pod (15006), of the local fast path and of
// passthrough move in C (the last three as plain ↔ plain relays). Decisions stay in TypeScript and are the
// node path's own: the mesh router picks where a captured connection goes and accounts for it (mesh.ts),
// a pod's CONNECTs pass the shared in-pod admission (admission.ts), pooling is the native pool's
// (native-pool.ts, as for tunnels), accounting the tracker's.
import {closeSync} from 'node:fs'
import net from 'node:net'

import {INPOD_SKIP_MARK, originalDst, tcpSocket, tcpSockets, type OriginalDestination} from '../netns/native.js'
import {formatHostPort, type HostPort} from '../proxy/address.js'
import type {HboneEngine} from '../proxy/hbone/hbone-engine.js'
import {NativeHbonePool} from '../proxy/hbone/native-pool.js'
import {NativeContexts} from '../proxy/hbone/native-tls.js'
import type {Credentials} from '../proxy/hbone/tls.js'
import type {TunnelClient} from '../proxy/paths/carry.js'
import type {SessionPeer} from '../proxy/paths/hbone-admission.js'
import {dialAndRelay, NativeHboneServer, type NativeRequest} from '../proxy/paths/native-server.js'
import {nativeClient} from '../proxy/paths/tunnel-inbound.js'
import type {MeshState} from '../proxy/state/state.js'
import type {InpodAdmission} from './admission.js'
import {ISSUE_RETRY_MS, serviceAccountKey} from './certs.js'
import type {Captured, MeshContext} from './mesh-context.js'
import {INPOD_HBONE_PORT, INPOD_INBOUND_PLAINTEXT_PORT, INPOD_OUTBOUND_PORT, type InpodListenerKind, listenInPod, type PlainJoin, type PodListener, type Workload} from './workloads.js'

const DIAL_TIMEOUT_MS = 10_000
/** Delivery sockets made per switch into a pod's namespace; at most this many wait unused per pod and family. */
const SOCKET_BATCH = 8

/** What the native side borrows from the mesh router. */
export interface NativeInpodHooks {
  admit(workload: Workload, request: NativeRequest, peer: SessionPeer): InpodAdmission
  /** a plaintext connection into the pod (15006), redirected from DESTINATION */
  inbound(captured: Captured, workload: Workload, destination: OriginalDestination): void
  outbound(captured: Captured, workload: Workload, destination: OriginalDestination): void
  spiffeOf(workload: Workload): string
}

/** Destroy and forget the entries of workloads (by uid) that are not LIVE. */
export function destroyGone(entries: Map<string, {destroy(): void}>, live: ReadonlySet<string>): void {
  for (const [uid, entry] of entries) {
    if (live.has(uid)) continue
    entry.destroy()
    entries.delete(uid)
  }
}

/** An unconnected socket inside WORKLOAD's namespace with the skip mark (the redirect rules let it out). */
const podSocket = (workload: Workload, host: string): number => tcpSocket(net.isIPv6(host) ? 6 : 4, {mark: INPOD_SKIP_MARK, netns: workload.add.netns})

/**
 * A pod's spare delivery sockets (made in its namespace with the skip mark), made SOCKET_BATCH at a time:
 * entering a namespace costs several times a socket, and each connection delivered to the pod needs one.
 */
class PodSockets {
  private readonly spare: Record<4 | 6, number[]> = {4: [], 6: []}

  constructor(readonly workload: Workload) {}

  take(host: string): number {
    const family = net.isIPv6(host) ? 6 : 4
    const spare = this.spare[family]
    if (spare.length === 0) spare.push(...tcpSockets(family, SOCKET_BATCH, {mark: INPOD_SKIP_MARK, netns: this.workload.add.netns}))
    return spare.pop()!
  }

  destroy(): void {
    for (const spare of Object.values(this.spare)) for (const fd of spare.splice(0)) closeSync(fd)
  }
}

/** node:net on listening socket FD, resetting every connection (a pod's 15008 while it has no certificate). */
function resetEvery(fd: number, workload: Workload, context: MeshContext): net.Server {
  const server = net.createServer((socket) => socket.resetAndDestroy())
  server.on('error', (error) => context.logger().warn({component: 'inpod', error: error.message, uid: workload.uid}, 'workload connection failed'))
  server.listen({fd})
  return server
}

export class NativeInpod {
  /** per source workload: its pool (sessions dialled from inside that pod) */
  private readonly pools = new Map<string, NativeHbonePool>()
  /** per destination workload: the server behind its 15008 */
  private readonly servers = new Map<string, NativeHboneServer>()
  /** per destination workload: its spare delivery sockets */
  private readonly sockets = new Map<string, PodSockets>()
  /** the TLS contexts of each served service account's credentials */
  private readonly contexts = new Map<Credentials, {account: string; contexts: NativeContexts}>()

  constructor(private readonly engine: HboneEngine, private readonly context: MeshContext, private readonly hooks: NativeInpodHooks) {}

  adoptListener(kind: InpodListenerKind, fd: number, workload: Workload): PodListener | undefined {
    if (kind === 'hbone') return this.listenHbone(fd, workload)
    const {hooks} = this
    return kind === 'outbound'
      ? this.listenCaptured(fd, INPOD_OUTBOUND_PORT, workload, (captured, destination) => hooks.outbound(captured, workload, destination))
      : this.listenCaptured(fd, INPOD_INBOUND_PLAINTEXT_PORT, workload, (captured, destination) => hooks.inbound(captured, workload, destination))
  }

  /** The captured connection as a tunnel client through SOURCE's pool. */
  async client(captured: Captured & {kind: 'native'}, source: Workload): Promise<TunnelClient> {
    return nativeClient(this.engine, await this.poolFor(source), this.context.tracker, captured.tunnelId, captured.remote)
  }

  /**
   * The accepted connection TUNNEL_ID joined in the addon to DESTINATION, dialled from inside DIAL_FROM
   * (a socket made there with the skip mark): node:net's joinFromWorkload, in C. Undefined when the client
   * left meanwhile; a failed dial resets the client and rejects with the errno.
   */
  join(tunnelId: number, dialFrom: Workload, destination: {address: string; port: number}): Promise<PlainJoin | undefined> {
    const {engine} = this
    let fd: number
    try {
      fd = this.socketsOf(dialFrom).take(destination.address)
    } catch (error) {
      engine.native.abort(tunnelId, 'no socket in the pod')
      return Promise.reject(error)
    }

    return new Promise((resolve, reject) => {
      let ended!: (end: Awaited<PlainJoin['closed']>) => void
      const closed = new Promise<Awaited<PlainJoin['closed']>>((resolveClosed) => (ended = resolveClosed))
      const id = engine.relay(tunnelId, {host: destination.address, port: destination.port}, DIAL_TIMEOUT_MS, {
        closed: (fromPlain, toPlain, error) => ended({error, fromPlain, toPlain}),
        dialResult(code, message) {
          if (code === '') {
            resolve({abort: () => engine.native.relayAbort(id!, 'closed by the agent'), closed})
            return
          }

          engine.forgetTunnel(id!)
          reject(Object.assign(new Error(`${code}: ${message ?? 'failed'}`), {code}))
        },
      }, fd)
      if (id === undefined) resolve(undefined)
    })
  }

  reconcile(live: ReadonlySet<string>, accounts: ReadonlySet<string>): void {
    destroyGone(this.pools, live)
    destroyGone(this.servers, live)
    destroyGone(this.sockets, live)

    // After the servers: a listener must never outlive its TLS context.
    for (const [credentials, entry] of this.contexts) {
      if (accounts.has(entry.account)) continue
      entry.contexts.free()
      this.contexts.delete(credentials)
    }
  }

  enforce(state: MeshState): void {
    for (const pool of this.pools.values()) pool.closeWhere((session) => state.isRevoked(session.peerSerial))
    for (const server of this.servers.values()) server.closeSessionsWhere((peer) => state.isRevoked(peer.serial))
  }

  close(): void {
    this.reconcile(new Set(), new Set())
  }

  /** 15001 or 15006 in the addon: each captured connection's SO_ORIGINAL_DST, then the mesh router decides. */
  private listenCaptured(fd: number, listenPort: number, workload: Workload, decide: (captured: Captured, destination: OriginalDestination) => void): PodListener {
    const {id, port} = this.engine.listenPlain('0.0.0.0', listenPort, (tunnelId, remote) => this.onCaptured(tunnelId, remote, workload, decide), fd)
    let open = true
    return {
      address: () => (open ? `0.0.0.0:${port}` : 'closed'),
      close: () => {
        if (open) this.engine.closeListener(id)
        open = false
      },
    }
  }

  private onCaptured(tunnelId: number, remote: string, workload: Workload, decide: (captured: Captured, destination: OriginalDestination) => void): void {
    let destination: OriginalDestination
    try {
      destination = originalDst(this.engine.native.plainFd(tunnelId))
    } catch (error) {
      this.engine.native.abort(tunnelId, 'no original destination')
      this.context.logger().warn({component: 'inpod', error: (error as Error).message, uid: workload.uid}, 'workload connection failed')
      return
    }

    decide({kind: 'native', remote, tunnelId}, destination)
  }

  /**
   * 15008 in the addon, once the pod's certificate is there. While it is being issued (at most
   * ISSUE_TIMEOUT_MS) connections wait in the backlog; if the issue fails, node:net takes the socket and
   * resets every connection (those waiting too) until a fresh socket asks again ISSUE_RETRY_MS later:
   * as the node path refuses them (certs.ts).
   */
  private listenHbone(firstFd: number, workload: Workload): PodListener {
    let fd: number | undefined = firstFd
    let refuser: net.Server | undefined
    let state: 'closed' | 'listening' | 'waiting' = 'waiting'
    let retry: NodeJS.Timeout | undefined
    const refuseUntilRetry = (error: unknown): void => {
      if (fd !== undefined) refuser = resetEvery(fd, workload, this.context)
      fd = undefined
      this.context.logger().warn({component: 'inpod', error: (error as Error).message, retryInMs: ISSUE_RETRY_MS, uid: workload.uid}, 'no workload certificate: refusing HBONE')
      retry = setTimeout(attempt, ISSUE_RETRY_MS)
      retry.unref()
    }

    const attempt = (): void => {
      try {
        fd ??= listenInPod(workload, 'hbone') // beside the refuser (SO_REUSEPORT), which goes now
      } catch (error) {
        refuseUntilRetry(error)
        return
      }

      refuser?.close()
      refuser = undefined
      this.serverFor(workload)
        .then(async (server) => {
          if (state === 'closed') return
          state = 'listening' // the addon owns FD from here
          await server.listen({host: '0.0.0.0', port: INPOD_HBONE_PORT}, fd)
          if (state !== 'listening') server.destroy() // closed while binding
        })
        .catch((error: unknown) => {
          if (state === 'waiting') refuseUntilRetry(error)
        })
    }

    attempt()
    return {
      address: () => (state === 'closed' ? 'closed' : `0.0.0.0:${INPOD_HBONE_PORT}`),
      close: () => {
        clearTimeout(retry)
        refuser?.close()
        if (state === 'waiting' && fd !== undefined) closeSync(fd)
        state = 'closed'
        const server = this.servers.get(workload.uid)
        server?.destroy()
        if (server) this.servers.delete(workload.uid)
        this.sockets.get(workload.uid)?.destroy() // made in this netns: a re-added pod may have another
        this.sockets.delete(workload.uid)
      },
    }
  }

  private socketsOf(workload: Workload): PodSockets {
    let sockets = this.sockets.get(workload.uid)
    if (sockets?.workload !== workload) {
      sockets?.destroy()
      sockets = new PodSockets(workload)
      this.sockets.set(workload.uid, sockets)
    }

    return sockets
  }

  private async contextsFor(workload: Workload): Promise<NativeContexts> {
    const {namespace, serviceAccount} = workload.add.workload
    const credentials = await this.context.certs.get(namespace, serviceAccount)
    let entry = this.contexts.get(credentials)
    if (!entry) {
      entry = {account: serviceAccountKey(namespace, serviceAccount), contexts: new NativeContexts(this.engine, credentials)}
      entry.contexts.setMaxListeners(0) // one 15008 server per pod of the account hears its renewals
      this.contexts.set(credentials, entry)
    }

    return entry.contexts
  }

  private async poolFor(source: Workload): Promise<NativeHbonePool> {
    const contexts = await this.contextsFor(source)
    let pool = this.pools.get(source.uid)
    if (!pool) {
      pool = new NativeHbonePool({
        contexts,
        engine: this.engine,
        isRevoked: (serial) => this.context.state().isRevoked(serial),
        socketFor: (address: HostPort) => podSocket(source, address.host),
        sourceSpiffe: () => this.hooks.spiffeOf(source),
        ...this.context.timing,
      })
      this.pools.set(source.uid, pool)
    }

    return pool
  }

  private async serverFor(workload: Workload): Promise<NativeHboneServer> {
    const contexts = await this.contextsFor(workload)
    let server = this.servers.get(workload.uid)
    if (!server) {
      const {logger, metrics, state, tracker} = this.context
      server = new NativeHboneServer({
        advertise: () => formatHostPort({host: workload.add.ips[0] ?? '0.0.0.0', port: INPOD_HBONE_PORT}),
        contexts,
        engine: this.engine,
        handleRequest: (tunnelId, request, peer) => this.onRequest(workload, tunnelId, request, peer),
        logger,
        metrics,
        selfSpiffe: () => this.hooks.spiffeOf(workload),
        state,
        tracker,
        ...this.context.timing,
      })
      this.servers.set(workload.uid, server)
    }

    return server
  }

  /** One CONNECT to a pod's 15008: the shared admission, then the addon dials the app from inside the pod. */
  private onRequest(workload: Workload, tunnelId: number, request: NativeRequest, peer: SessionPeer): void {
    const {engine} = this
    const {tracker} = this.context
    const admission = this.hooks.admit(workload, request, peer)
    if (!admission.allowed) {
      engine.native.refuse(tunnelId, admission.status, admission.message)
      tracker.refused(admission.record, admission.labels, {flag: admission.flag, message: admission.message})
      return
    }

    const {labels, record, target} = admission
    const refuseDial = (why: string): void => tracker.refused(record, labels, {flag: 'CONNECT', message: `${why} dialling ${formatHostPort(target)} in workload ${record.service}`})
    let fd: number
    try {
      fd = this.socketsOf(workload).take(target.host)
    } catch (error) {
      engine.native.refuse(tunnelId, 503)
      refuseDial((error as Error).message)
      return
    }

    dialAndRelay({engine, refuseDial, tracker}, tunnelId, target, {labels, record}, DIAL_TIMEOUT_MS, fd)
  }
}

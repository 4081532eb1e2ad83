// Mesh traffic of redirected workloads (issue 4, decision 4):
//   * at a pod's 15001: the original destination is a mesh workload's IP → HBONE to `<dest ip>:15008`,
//     pinned to the destination's SPIFFE ID, presenting the source pod's service-account certificate,
//     the TCP connection dialled from inside the source pod (skip mark); the destination is served by
//     this same agent → local fast path (authorized, then straight into the destination pod);
//     a Kubernetes Service's ClusterIP:port → one of its endpoint pods at its target port, as above (cluster-ips.ts);
//     a mesh service address (a 100.64.0.0/10 name address or an intercepted CIDR, services.ts) → an
//     endpoint of that service over HBONE to its hosting agent, as an inbound tunnel does, presenting
//     the pod's certificate (the hosting agent applies its policies to the pod's identity);
//     anything else → plain passthrough;
//   * at a pod's 15008: an HBONE server with the pod's service-account certificate that accepts only
//     targets that are that pod's own IPs (never an open relay), authorizes the source against the
//     policies (`ns:`, `sa:`, `spiffe://` sources), and delivers from inside the pod (skip mark).
// Both on either engine (context.engine): node:http2 + node:net, or the native one, whose addon then
// owns the pod's 15001, 15006 and 15008 listeners (their fds made in the pod's namespace) and its dials
// (sockets made there with the skip mark) and moves the bytes in C (plain ones as relays: 15006, the local
// fast path, passthrough); every decision above stays here, shared, only the byte mover differs.
import type {IncomingHttpHeaders, ServerHttp2Stream} from 'node:http2'
import net from 'node:net'
import type {TLSSocket} from 'node:tls'

import type {WorkloadRecord} from '../config/types.js'
import {describeSystemError} from '../errors.js'
import {INPOD_SKIP_MARK, tcpSocket, type OriginalDestination} from '../netns/native.js'
import {formatHostPort, type HostPort, normalizeIp} from '../proxy/address.js'
import {HboneError, HbonePool} from '../proxy/hbone/hbone-pool.js'
import {HboneServer} from '../proxy/paths/hbone-server.js'
import type {TrafficLabels} from '../proxy/observe/metrics.js'
import type {ConnectionRecord} from '../proxy/observe/registry.js'
import type {MeshState} from '../proxy/state/state.js'
import type {PeerIdentity} from '../proxy/hbone/tls.js'
import {carryToService, type TunnelClient} from '../proxy/paths/carry.js'
import {socketClient} from '../proxy/paths/tunnel-inbound.js'
import {serviceAccountKey} from './certs.js'
import type {ConnectionTracker} from '../proxy/paths/connection.js'
import {clusterIpEndpoints, pickEndpoint} from './cluster-ips.js'
import {admitInpodConnect, type InpodAdmission, workloadService} from './admission.js'
import {destroyGone, NativeInpod} from './native-mesh.js'
import {meshServices} from './services.js'
import {dialFromWorkload, joinFromWorkload, passthrough, type PlainJoin, type PodListener, type Workload, type WorkloadManager, INPOD_HBONE_PORT, type InpodListenerKind} from './workloads.js'

export type {Captured, MeshAgentContext, MeshContext} from './mesh-context.js'
import type {Captured, MeshContext} from './mesh-context.js'

export {workloadService} from './admission.js'

export const workloadSpiffe = (trustDomain: string, namespace: string, serviceAccount: string): string => `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`

/** IP → workload record, built once per configuration version. */
const indexes = new WeakMap<MeshState, Map<string, WorkloadRecord>>()
function workloadByIp(state: MeshState, ip: string): WorkloadRecord | undefined {
  let index = indexes.get(state)
  if (!index) {
    index = new Map()
    for (const record of Object.values(state.snapshot.workload ?? {})) for (const address of record.ips) index.set(normalizeIp(address), record)
    indexes.set(state, index)
  }

  return index.get(normalizeIp(ip))
}

export class InpodMesh {
  /** per source workload: its HBONE client pool (sessions are dialled from inside that pod) */
  private readonly pools = new Map<string, HbonePool>()
  /** per destination workload: the HBONE server behind its 15008 */
  private readonly servers = new Map<string, HboneServer>()
  /** the native engine's side: pools, 15001/15008 listeners and servers of the pods */
  private readonly native: NativeInpod | undefined

  constructor(private readonly context: MeshContext, private readonly workloads: () => WorkloadManager) {
    this.native = context.engine && new NativeInpod(context.engine, context, {
      admit: (workload, request, peer) => admitInpodConnect(workload, request, peer, this.admissionContext()),
      inbound: (captured, workload, destination) => this.inboundCaptured(captured, workload, destination),
      outbound: (captured, workload, destination) => this.outboundCaptured(captured, workload, destination),
      spiffeOf: (workload) => this.spiffeOf(workload),
    })
  }

  spiffeOf(workload: Workload): string {
    const {namespace, serviceAccount} = workload.add.workload
    return workloadSpiffe(this.context.trustDomain, namespace, serviceAccount)
  }

  /** The native engine serves the pod's 15001 and 15008 (the fds made in its namespace); undefined: node:net does. */
  adoptListener(kind: InpodListenerKind, fd: number, workload: Workload): PodListener | undefined {
    return this.native?.adoptListener(kind, fd, workload)
  }

  /** A captured outbound connection (15001) accepted by node:net. */
  outbound(socket: net.Socket, workload: Workload, destination: OriginalDestination): void {
    this.outboundCaptured({kind: 'socket', socket}, workload, destination)
  }

  /** A plaintext connection into a pod (15006) accepted by node:net. */
  inbound(socket: net.Socket, workload: Workload, destination: OriginalDestination): void {
    this.inboundCaptured({kind: 'socket', socket}, workload, destination)
  }

  /**
   * A connection to a pod's own 15008 accepted by node:net: TLS + HTTP/2 with the pod's service-account
   * certificate. While it is issued the bytes wait in the socket (at most ISSUE_TIMEOUT_MS); without one
   * the connection is reset, at once while the last issue failed under ISSUE_RETRY_MS ago (certs.ts),
   * as the native engine refuses it (native-mesh.ts).
   */
  hbone(socket: net.Socket, workload: Workload): void {
    this.serverFor(workload)
      .then((server) => {
        if (socket.destroyed) return
        server.accept(socket)
      })
      .catch((error: unknown) => {
        this.context.logger().warn({component: 'inpod', error: (error as Error).message, uid: workload.uid}, 'no workload certificate: refusing HBONE')
        if (!socket.destroyed) socket.resetAndDestroy()
      })
  }

  /**
   * WORKLOAD's open connections in the registry, on either engine: those it sent (its address is the
   * source) and those delivered into it (its address is the target). Hub relays are not its.
   */
  connectionsOf(workload: Workload): number {
    const ips = new Set(workload.add.ips.map((ip) => normalizeIp(ip)))
    const ours = (address: string): boolean => ips.has(normalizeIp(hostOf(address)))
    return this.context.tracker.countOpen((record) => record.direction !== 'relay' && (ours(record.sourceAddress) || ours(record.hboneTarget)))
  }

  /** Forget pools and servers of workloads that are gone; keep certificates only for served accounts. */
  reconcile(): void {
    const live = new Set(this.workloads().list().map((info) => info.uid))
    destroyGone(this.pools, live)
    destroyGone(this.servers, live)

    const accounts = new Set(this.workloads().list().map((info) => serviceAccountKey(info.namespace, info.serviceAccount)))
    this.native?.reconcile(live, accounts)
    this.context.certs.retain(accounts)
  }

  /** After a configuration change: cut sessions of revoked peers. */
  enforce(state: MeshState): void {
    for (const pool of this.pools.values()) pool.closeWhere((session) => state.isRevoked(session.peerSerial))
    for (const server of this.servers.values()) server.closeSessionsWhere((peer) => state.isRevoked(peer.serial))
    this.native?.enforce(state)
  }

  close(): void {
    for (const pool of this.pools.values()) pool.destroy()
    for (const server of this.servers.values()) server.destroy()
    this.pools.clear()
    this.servers.clear()
    this.native?.close()
    this.context.certs.close()
  }

  private admissionContext(): {node: string; spiffeOf: (workload: Workload) => string; state: MeshState; tracker: ConnectionTracker} {
    return {node: this.context.node, spiffeOf: (workload) => this.spiffeOf(workload), state: this.context.state(), tracker: this.context.tracker}
  }

  /** Where a captured connection goes: a ClusterIP's endpoint, a pod of this agent, a mesh pod, a mesh service, or out. */
  private outboundCaptured(captured: Captured, workload: Workload, destination: OriginalDestination): void {
    const state = this.context.state()
    // A Kubernetes Service's ClusterIP: straight to one of its endpoint pods at the pod's port (this node's first).
    const endpoint = pickEndpoint(clusterIpEndpoints(state, destination.address, destination.port), (candidate) => this.workloads().byIp(candidate.address) !== undefined)
    const to = endpoint ? {...destination, address: endpoint.address, port: endpoint.port} : destination
    // A pod this agent serves is a mesh workload whether or not the mesh has its record yet.
    const local = this.workloads().byIp(to.address)
    const target = local ? undefined : endpoint?.workload ?? workloadByIp(state, to.address)
    if (!local && !target) {
      const service = meshServices(state).serviceAt(destination.address, destination.port)
      if (service) this.toService(captured, workload, service)
      else void passthrough(this.join(captured, workload, workload, destination), workload)
      return
    }

    const run = local ? this.localFastPath(captured, workload, local, to) : this.viaHbone(captured, workload, target!, to)
    run.catch((error: unknown) => {
      this.context.logger().warn({component: 'inpod', error: (error as Error).message, uid: workload.uid}, 'outbound connection failed')
      this.reset(captured)
    })
  }

  /** Plaintext into a pod (15006): to the app, dialled from inside the pod (it sees its own address as the source). */
  private inboundCaptured(captured: Captured, workload: Workload, destination: OriginalDestination): void {
    void passthrough(this.join(captured, workload, workload, destination), workload)
  }

  /**
   * The captured connection (of SOURCE) joined to DESTINATION dialled from inside DIAL_FROM, by its engine's
   * byte mover (node:net, or a relay in the addon); held by both pods, so that deleting either ends it.
   */
  private async join(captured: Captured, source: Workload, dialFrom: Workload, destination: {address: string; port: number}): Promise<PlainJoin | undefined> {
    const joined = captured.kind === 'socket' ? await joinFromWorkload(captured.socket, dialFrom, destination) : await this.native!.join(captured.tunnelId, dialFrom, destination)
    if (!joined) return undefined
    const owners = [source, dialFrom]
    for (const owner of owners) owner.joins.add(joined)
    void joined.closed.then(() => {
      for (const owner of owners) owner.joins.delete(joined)
    })
    return joined
  }

  private reset(captured: Captured): void {
    if (captured.kind === 'native') this.context.engine!.native.abort(captured.tunnelId, 'refused')
    else if (!captured.socket.destroyed) captured.socket.resetAndDestroy()
  }

  /** The captured connection as the client of a tunnel through SOURCE's pool, on its engine. */
  private async clientOf(captured: Captured, source: Workload): Promise<TunnelClient> {
    if (captured.kind === 'native') return this.native!.client(captured, source)
    return socketClient(captured.socket, await this.poolFor(source), this.context.tracker)
  }

  /**
   * Both pods on this agent: authorized as the destination agent would, then joined socket to socket inside
   * the two pods (no TLS), and accounted like every other path: one connection in the registry, the
   * metrics and the access log, reported by the source with the destination's identity.
   */
  private async localFastPath(captured: Captured, source: Workload, destinationWorkload: Workload, destination: OriginalDestination): Promise<void> {
    const {tracker} = this.context
    const {namespace, name} = destinationWorkload.add.workload
    const target = formatHostPort({host: destination.address, port: destination.port})
    const record: ConnectionRecord = {
      destinationAddress: target, destinationAgent: this.context.node, destinationSpiffe: this.spiffeOf(destinationWorkload), direction: 'outbound', hboneTarget: target,
      id: tracker.newId(), service: workloadService(namespace, name), sourceAddress: remoteOf(captured), sourceSpiffe: this.spiffeOf(source), startedAt: Date.now(),
    }
    const labels: TrafficLabels = {
      connectionSecurityPolicy: 'unknown', destinationPrincipal: record.destinationSpiffe, destinationService: record.service, destinationWorkload: name,
      reporter: 'source', sourcePrincipal: record.sourceSpiffe, sourceWorkload: source.add.workload.name,
    }
    const decision = this.context.state().authorize({destinationPort: destination.port, service: record.service, sourceAddress: source.add.ips[0] ?? '', sourceSpiffe: record.sourceSpiffe!})
    if (!decision.allowed) {
      tracker.refused(record, labels, {flag: 'DENY', message: `connection closed due to policy rejection: ${decision.reason}`})
      this.reset(captured)
      return
    }

    let joined: PlainJoin | undefined
    try {
      joined = await this.join(captured, source, destinationWorkload, destination)
    } catch (error) {
      tracker.refused(record, labels, {flag: 'CONNECT', message: `${describeSystemError(error)} dialling ${target} in workload ${record.service}`})
      return
    }

    if (!joined) return // the app left meanwhile
    const finish = tracker.opened(record, labels, () => joined.abort())
    const {error, ...bytes} = await joined.closed
    finish(bytes, error)
  }

  /** To a mesh service address: an endpoint of SERVICE, as an inbound tunnel would, as the pod's identity. */
  private toService(captured: Captured, source: Workload, service: string): void {
    const {logger, state, tracker} = this.context
    this.clientOf(captured, source)
      .then((client) => carryToService(client, service, {logger, sourceSpiffe: () => this.spiffeOf(source), state, tracker}, source.add.workload.name))
      .catch((error: unknown) => {
        logger().warn({component: 'inpod', error: (error as Error).message, service, uid: source.uid}, 'no workload certificate: refusing a mesh service connection')
        this.reset(captured)
      })
  }

  private async viaHbone(captured: Captured, source: Workload, target: WorkloadRecord, destination: OriginalDestination): Promise<void> {
    const {tracker} = this.context
    const client = await this.clientOf(captured, source)
    const hbone = formatHostPort({host: destination.address, port: INPOD_HBONE_PORT})
    const authority = formatHostPort({host: destination.address, port: destination.port})
    const spiffe = workloadSpiffe(this.context.trustDomain, target.namespace, target.serviceAccount)
    const record: ConnectionRecord = {
      destinationAddress: hbone, destinationAgent: target.node, destinationSpiffe: spiffe, direction: 'outbound', hboneTarget: authority,
      id: tracker.newId(), service: workloadService(target.namespace, target.name), sourceAddress: client.source,
      sourceSpiffe: this.spiffeOf(source), startedAt: Date.now(),
    }
    const labels: TrafficLabels = {
      connectionSecurityPolicy: 'mutual_tls', destinationPrincipal: spiffe, destinationService: record.service, destinationWorkload: target.name,
      reporter: 'source', sourcePrincipal: record.sourceSpiffe, sourceWorkload: source.add.workload.name,
    }
    try {
      const opened = await client.open({address: hbone, spiffe}, authority, {})
      if (!opened) return // the app left meanwhile
      record.peerSerial = opened.peerSerial
      opened.track(record, labels)
    } catch (error) {
      const failure = error instanceof HboneError ? error : new HboneError('ZT_ERR_HBONE_DIAL', (error as Error).message, 'CONNECT', false)
      tracker.refused(record, labels, {flag: failure.flag, message: failure.message})
      this.reset(captured)
    }
  }

  private async poolFor(source: Workload): Promise<HbonePool> {
    const {namespace, serviceAccount} = source.add.workload
    const credentials = await this.context.certs.get(namespace, serviceAccount)
    let pool = this.pools.get(source.uid)
    if (!pool) {
      pool = new HbonePool({
        connectSocket: (address) => dialSocket(source, address),
        credentials,
        isRevoked: (serial) => this.context.state().isRevoked(serial),
        ...this.context.timing,
      })
      this.pools.set(source.uid, pool)
    }

    return pool
  }

  private async serverFor(workload: Workload): Promise<HboneServer> {
    const {namespace, serviceAccount} = workload.add.workload
    const credentials = await this.context.certs.get(namespace, serviceAccount)
    let server = this.servers.get(workload.uid)
    if (!server) {
      const address = (): string => formatHostPort({host: workload.add.ips[0] ?? '0.0.0.0', port: INPOD_HBONE_PORT})
      server = new HboneServer({
        advertise: address,
        credentials,
        handleStream: (stream, headers, peer) => this.onStream(workload, stream, headers, peer),
        logger: this.context.logger,
        metrics: this.context.metrics,
        state: this.context.state,
        tracker: this.context.tracker,
        ...this.context.timing,
      })
      this.servers.set(workload.uid, server)
    }

    return server
  }

  /** One CONNECT to a pod's 15008 (node:http2). */
  private onStream(workload: Workload, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, peer: PeerIdentity): void {
    const socket = stream.session?.socket as TLSSocket | undefined
    const ip = normalizeIp(socket?.remoteAddress)
    const admission = admitInpodConnect(workload, {authority: headers[':authority'], method: headers[':method']}, {ip, serial: peer.serial, source: `${ip}:${socket?.remotePort}`, spiffe: peer.spiffe}, this.admissionContext())
    if (!admission.allowed) {
      this.refuseStream(stream, admission)
      return
    }

    this.deliver(workload, stream, admission)
  }

  private refuseStream(stream: ServerHttp2Stream, refusal: Pick<InpodAdmission & {allowed: false}, 'flag' | 'labels' | 'message' | 'record' | 'status'>): void {
    if (!stream.closed && !stream.headersSent) stream.respond({':status': refusal.status}, {endStream: true})
    this.context.tracker.refused(refusal.record, refusal.labels, {flag: refusal.flag, message: refusal.message})
  }

  /** Connect to the app from inside its pod (skip mark), and answer 200 only once connected. */
  private deliver(workload: Workload, stream: ServerHttp2Stream, admission: InpodAdmission & {allowed: true}): void {
    const {labels, record, target} = admission
    dialFromWorkload(workload, {address: target.host, port: target.port})
      .then((upstream) => {
        if (stream.closed || stream.destroyed) {
          upstream.destroy()
          return
        }

        stream.respond({':status': 200})
        this.context.tracker.established(record, labels, upstream, stream)
      })
      .catch((error: unknown) => {
        if (!stream.closed) this.refuseStream(stream, {flag: 'CONNECT', labels, message: `${describeSystemError(error)} dialling ${formatHostPort(target)} in workload ${record.service}`, record, status: 503})
      })
  }
}

/** The captured connection's client as `ip:port`. */
function remoteOf(captured: Captured): string {
  return captured.kind === 'socket' ? `${captured.socket.remoteAddress}:${captured.socket.remotePort}` : captured.remote
}

/** The host of `host:port`, `[v6]:port` or an unbracketed `v6:port` (as sockets' remote addresses are written). */
function hostOf(address: string): string {
  const colon = address.lastIndexOf(':')
  const host = colon < 0 ? address : address.slice(0, colon)
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
}

/** A TCP connection to ADDRESS dialled from inside SOURCE's pod with the skip mark (TLS goes on top). */
function dialSocket(source: Workload, address: HostPort): net.Socket {
  // Not half-open: when the peer agent goes away, the session must see the end and close.
  const socket = new net.Socket({fd: tcpSocket(net.isIPv6(address.host) ? 6 : 4, {mark: INPOD_SKIP_MARK, netns: source.add.netns})})
  socket.setNoDelay(true)
  socket.connect({host: address.host, port: address.port})
  return socket
}

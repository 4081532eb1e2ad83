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
import type {IncomingHttpHeaders, ServerHttp2Stream} from 'node:http2'
import net from 'node:net'
import type {TLSSocket} from 'node:tls'

import type {WorkloadRecord} from '../config/types.js'
import {describeSystemError} from '../errors.js'
import {INPOD_SKIP_MARK, tcpSocket, type OriginalDestination} from '../netns/native.js'
import {formatHostPort, type HostPort, normalizeIp, parseHostPort} from '../proxy/address.js'
import {HboneError, HbonePool} from '../proxy/hbone/hbone-pool.js'
import {HboneServer} from '../proxy/paths/hbone-server.js'
import type {ResponseFlag, TrafficLabels} from '../proxy/observe/metrics.js'
import type {ConnectionRecord} from '../proxy/observe/registry.js'
import type {MeshState} from '../proxy/state/state.js'
import type {PeerIdentity} from '../proxy/hbone/tls.js'
import {carryToService} from '../proxy/paths/carry.js'
import {socketClient} from '../proxy/paths/tunnel-inbound.js'
import {serviceAccountKey, type WorkloadCertificates} from './certs.js'
import type {Logger} from '../proxy/observe/log.js'
import type {ConnectionTracker} from '../proxy/paths/connection.js'
import type {Metrics} from '../proxy/observe/metrics.js'
import {clusterIpEndpoints, pickEndpoint} from './cluster-ips.js'
import {meshServices} from './services.js'
import {dialFromWorkload, joinSockets, passthrough, type Workload, type WorkloadManager, INPOD_HBONE_PORT} from './workloads.js'

/** What the agent lends the mesh router (part of the runtime's InpodAgentContext). */
export interface MeshAgentContext {
  logger: () => Logger
  metrics: Metrics
  node: string
  state: () => MeshState
  timing?: {idleTimeoutMs?: number; keepaliveIntervalMs?: number; keepaliveTimeoutMs?: number}
  tracker: ConnectionTracker
  trustDomain: string
}

/** What the mesh router needs: the agent's context plus the pods' certificates. */
export type MeshContext = MeshAgentContext & {
  certs: WorkloadCertificates
}

/** The policy "service" of a pod: `<namespace>/<name>` (policies without services apply to every pod). */
export const workloadService = (namespace: string, name: string): string => `${namespace}/${name}`

const workloadSpiffe = (trustDomain: string, namespace: string, serviceAccount: string): string => `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`

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

  constructor(private readonly context: MeshContext, private readonly workloads: () => WorkloadManager) {}

  spiffeOf(workload: Workload): string {
    const {namespace, serviceAccount} = workload.add.workload
    return workloadSpiffe(this.context.trustDomain, namespace, serviceAccount)
  }

  /** A captured outbound connection (15001). */
  outbound(socket: net.Socket, workload: Workload, destination: OriginalDestination): void {
    const state = this.context.state()
    // A Kubernetes Service's ClusterIP: straight to one of its endpoint pods at the pod's port (this node's first).
    const endpoint = pickEndpoint(clusterIpEndpoints(state, destination.address, destination.port), (candidate) => this.workloads().byIp(candidate.address) !== undefined)
    const to = endpoint ? {...destination, address: endpoint.address, port: endpoint.port} : destination
    // A pod this agent serves is a mesh workload whether or not the mesh has its record yet.
    const local = this.workloads().byIp(to.address)
    const target = local ? undefined : endpoint?.workload ?? workloadByIp(state, to.address)
    if (!local && !target) {
      const service = meshServices(state).serviceAt(destination.address, destination.port)
      if (service) this.toService(socket, workload, service)
      else void passthrough(socket, workload, destination)
      return
    }

    const run = local ? this.localFastPath(socket, workload, local, to) : this.viaHbone(socket, workload, target!, to)
    run.catch((error: unknown) => {
      this.context.logger().warn({component: 'inpod', error: (error as Error).message, uid: workload.uid}, 'outbound connection failed')
      if (!socket.destroyed) socket.resetAndDestroy()
    })
  }

  /** A connection to a pod's own 15008: TLS + HTTP/2 with the pod's service-account certificate. */
  hbone(socket: net.Socket, workload: Workload): void {
    // TLS bytes that arrive while the certificate is fetched stay buffered in the socket.
    this.serverFor(workload)
      .then((server) => {
        if (socket.destroyed) return
        server.accept(socket)
      })
      .catch((error: unknown) => {
        this.context.logger().warn({component: 'inpod', error: (error as Error).message, uid: workload.uid}, 'no workload certificate: refusing HBONE')
        socket.destroy()
      })
  }

  /** Forget pools and servers of workloads that are gone; keep certificates only for served accounts. */
  reconcile(): void {
    const live = new Set(this.workloads().list().map((info) => info.uid))
    for (const [uid, pool] of this.pools) {
      if (live.has(uid)) continue
      pool.destroy()
      this.pools.delete(uid)
    }

    for (const [uid, server] of this.servers) {
      if (live.has(uid)) continue
      server.destroy()
      this.servers.delete(uid)
    }

    this.context.certs.retain(new Set(this.workloads().list().map((info) => serviceAccountKey(info.namespace, info.serviceAccount))))
  }

  /** After a configuration change: cut sessions of revoked peers. */
  enforce(state: MeshState): void {
    for (const pool of this.pools.values()) pool.closeWhere((session) => state.isRevoked(session.peerSerial))
    for (const server of this.servers.values()) server.closeSessionsWhere((peer) => state.isRevoked(peer.serial))
  }

  close(): void {
    for (const pool of this.pools.values()) pool.destroy()
    for (const server of this.servers.values()) server.destroy()
    this.pools.clear()
    this.servers.clear()
    this.context.certs.close()
  }

  /**
   * Both pods on this agent: authorized as the destination agent would, then joined socket to socket inside
   * the two pods (no TLS), and accounted like every other path: one connection in the registry, the
   * metrics and the access log, reported by the source with the destination's identity.
   */
  private async localFastPath(socket: net.Socket, source: Workload, destinationWorkload: Workload, destination: OriginalDestination): Promise<void> {
    const {tracker} = this.context
    const {namespace, name} = destinationWorkload.add.workload
    const target = formatHostPort({host: destination.address, port: destination.port})
    const record: ConnectionRecord = {
      destinationAddress: target, destinationAgent: this.context.node, destinationSpiffe: this.spiffeOf(destinationWorkload), direction: 'outbound', hboneTarget: target,
      id: tracker.newId(), service: workloadService(namespace, name), sourceAddress: `${socket.remoteAddress}:${socket.remotePort}`, sourceSpiffe: this.spiffeOf(source), startedAt: Date.now(),
    }
    const labels: TrafficLabels = {
      connectionSecurityPolicy: 'unknown', destinationPrincipal: record.destinationSpiffe, destinationService: record.service, destinationWorkload: name,
      reporter: 'source', sourcePrincipal: record.sourceSpiffe, sourceWorkload: source.add.workload.name,
    }
    const decision = this.context.state().authorize({destinationPort: destination.port, service: record.service, sourceAddress: source.add.ips[0] ?? '', sourceSpiffe: record.sourceSpiffe!})
    if (!decision.allowed) {
      tracker.refused(record, labels, {flag: 'DENY', message: `connection closed due to policy rejection: ${decision.reason}`})
      socket.resetAndDestroy()
      return
    }

    let upstream: net.Socket
    try {
      upstream = await dialFromWorkload(destinationWorkload, destination)
    } catch (error) {
      tracker.refused(record, labels, {flag: 'CONNECT', message: `${describeSystemError(error)} dialling ${target} in workload ${record.service}`})
      socket.resetAndDestroy()
      return
    }

    if (socket.destroyed) {
      upstream.destroy()
      return
    }

    const finish = tracker.opened(record, labels, () => {
      socket.destroy()
      upstream.destroy()
    })
    let open = 2
    const closed = (): void => {
      if (--open === 0) finish({fromPlain: socket.bytesRead, toPlain: socket.bytesWritten})
    }

    socket.once('close', closed)
    upstream.once('close', closed)
    joinSockets(socket, upstream)
  }

  /** To a mesh service address: an endpoint of SERVICE, as an inbound tunnel would, as the pod's identity. */
  private toService(socket: net.Socket, source: Workload, service: string): void {
    const {logger, state, tracker} = this.context
    this.poolFor(source)
      .then((pool) => carryToService(socketClient(socket, pool, tracker), service, {logger, sourceSpiffe: () => this.spiffeOf(source), state, tracker}, source.add.workload.name))
      .catch((error: unknown) => {
        logger().warn({component: 'inpod', error: (error as Error).message, service, uid: source.uid}, 'no workload certificate: refusing a mesh service connection')
        if (!socket.destroyed) socket.resetAndDestroy()
      })
  }

  private async viaHbone(socket: net.Socket, source: Workload, target: WorkloadRecord, destination: OriginalDestination): Promise<void> {
    const {tracker} = this.context
    const pool = await this.poolFor(source)
    const hbone = formatHostPort({host: destination.address, port: INPOD_HBONE_PORT})
    const authority = formatHostPort({host: destination.address, port: destination.port})
    const spiffe = workloadSpiffe(this.context.trustDomain, target.namespace, target.serviceAccount)
    const record: ConnectionRecord = {
      destinationAddress: hbone, destinationAgent: target.node, destinationSpiffe: spiffe, direction: 'outbound', hboneTarget: authority,
      id: tracker.newId(), service: workloadService(target.namespace, target.name), sourceAddress: `${socket.remoteAddress}:${socket.remotePort}`,
      sourceSpiffe: this.spiffeOf(source), startedAt: Date.now(),
    }
    const labels: TrafficLabels = {
      connectionSecurityPolicy: 'mutual_tls', destinationPrincipal: spiffe, destinationService: record.service, destinationWorkload: target.name,
      reporter: 'source', sourcePrincipal: record.sourceSpiffe, sourceWorkload: source.add.workload.name,
    }
    try {
      const {peerSerial, stream} = await pool.open({address: hbone, spiffe}, authority, {})
      record.peerSerial = peerSerial
      if (socket.destroyed) {
        stream.close()
        return
      }

      tracker.established(record, labels, socket, stream)
    } catch (error) {
      const flag: ResponseFlag = error instanceof HboneError ? error.flag : 'CONNECT'
      tracker.refused(record, labels, {flag, message: (error as Error).message})
      socket.resetAndDestroy()
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

  /** One CONNECT to a pod's 15008. */
  private onStream(workload: Workload, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, peer: PeerIdentity): void {
    const {tracker} = this.context
    const state = this.context.state()
    const socket = stream.session?.socket as TLSSocket | undefined
    const authority = headers[':authority']
    const target = parseHostPort(authority)
    const {namespace, name} = workload.add.workload
    const record: ConnectionRecord = {
      destinationAddress: formatHostPort({host: workload.add.ips[0] ?? '0.0.0.0', port: INPOD_HBONE_PORT}), destinationAgent: this.context.node,
      destinationSpiffe: this.spiffeOf(workload), direction: 'inbound', hboneTarget: typeof authority === 'string' ? authority.slice(0, 300) : '',
      id: tracker.newId(), peerSerial: peer.serial, service: workloadService(namespace, name),
      sourceAddress: `${normalizeIp(socket?.remoteAddress)}:${socket?.remotePort}`, sourceSpiffe: peer.spiffe, startedAt: Date.now(),
    }
    const labels: TrafficLabels = {
      connectionSecurityPolicy: 'mutual_tls', destinationPrincipal: record.destinationSpiffe, destinationService: record.service, destinationWorkload: name,
      reporter: 'destination', sourcePrincipal: peer.spiffe,
    }
    const refuse = (status: number, flag: ResponseFlag, message: string): void => {
      if (!stream.closed && !stream.headersSent) stream.respond({':status': status}, {endStream: true})
      tracker.refused(record, labels, {flag, message})
    }

    if (headers[':method'] !== 'CONNECT') return refuse(400, 'CONNECT', `expected method CONNECT, got ${String(headers[':method']).slice(0, 20)}`)
    if (!target) return refuse(400, 'CONNECT', `bad :authority ${JSON.stringify(record.hboneTarget)}: expected host:port`)
    if (!workload.add.ips.some((ip) => normalizeIp(ip) === normalizeIp(target.host))) {
      return refuse(400, 'CONNECT', `${formatHostPort(target)} is not an address of workload ${namespace}/${name} (not an open relay)`)
    }

    if (state.isRevoked(peer.serial)) return refuse(401, 'CERT_REVOKED', `connection closed: peer certificate ${peer.serial} revoked`)
    const decision = state.authorize({destinationPort: target.port, service: record.service, sourceAddress: normalizeIp(socket?.remoteAddress), sourceSpiffe: peer.spiffe})
    if (!decision.allowed) return refuse(401, 'DENY', `connection closed due to policy rejection: ${decision.reason}`)
    this.deliver(workload, stream, target, record, labels, refuse)
  }

  /** Connect to the app from inside its pod (skip mark), and answer 200 only once connected. */
  private deliver(workload: Workload, stream: ServerHttp2Stream, target: HostPort, record: ConnectionRecord, labels: TrafficLabels, refuse: (status: number, flag: ResponseFlag, message: string) => void): void {
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
        if (!stream.closed) refuse(503, 'CONNECT', `${describeSystemError(error)} dialling ${formatHostPort(target)} in workload ${record.service}`)
      })
  }
}

/** A TCP connection to ADDRESS dialled from inside SOURCE's pod with the skip mark (TLS goes on top). */
function dialSocket(source: Workload, address: HostPort): net.Socket {
  // Not half-open: when the peer agent goes away, the session must see the end and close.
  const socket = new net.Socket({fd: tcpSocket(net.isIPv6(address.host) ? 6 : 4, {mark: INPOD_SKIP_MARK, netns: source.add.netns})})
  socket.setNoDelay(true)
  socket.connect({host: address.host, port: address.port})
  return socket
}

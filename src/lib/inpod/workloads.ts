// The workload manager: per redirected workload (a pod's network namespace) it owns the listeners
// 15001 (outbound capture), 15006 (inbound plaintext) and 15008 (HBONE) — plus what `attach` adds, the
// DNS on 15053 (src/lib/inpod/dns.ts) — created INSIDE the pod's netns
// through the netns addon with SO_MARK 0x539 (the redirect rules skip our own traffic) and SO_REUSEPORT
// (a restarted agent binds beside the old one). No process per workload: the sockets live in this
// process. Deleting a workload closes its listeners and every connection it carries.
import net from 'node:net'

import {ZtError} from '../errors.js'
import {INPOD_SKIP_MARK, listenTcp, originalDst, tcpSocket, type OriginalDestination} from '../netns/native.js'
import type {PlainBytes} from '../proxy/paths/connection.js'
import type {InpodAdd} from './protocol.js'

export const INPOD_OUTBOUND_PORT = 15001
export const INPOD_INBOUND_PLAINTEXT_PORT = 15006
export const INPOD_HBONE_PORT = 15008

export type InpodListenerKind = 'outbound' | 'inbound' | 'hbone'

const LISTENER_PORTS: Record<InpodListenerKind, number> = {
  hbone: INPOD_HBONE_PORT,
  inbound: INPOD_INBOUND_PLAINTEXT_PORT,
  outbound: INPOD_OUTBOUND_PORT,
}

/** A workload as the agent holds it. */
export interface Workload {
  readonly add: InpodAdd
  readonly uid: string
  /** every live socket accepted on (or dialled for) this workload: destroyed on delete */
  readonly sockets: Set<net.Socket>
  /** open plain connections joined through the pod (passthrough out, 15006 in): not in the connection registry */
  plainConnections: number
  /** every open joined connection the pod is an end of, whichever engine moves it: aborted on delete */
  readonly joins: Set<PlainJoin>
}

/** A plain connection joined through a pod (15006, passthrough, the local fast path), whichever engine moves its bytes. */
export interface PlainJoin {
  /** reset both ends (a policy, a revocation, the workload's delete) */
  abort(): void
  /** once both ends closed: bytes read from and written to the accepted end, and why when it failed */
  readonly closed: Promise<PlainBytes & {error?: string}>
}

export interface WorkloadHandlers {
  /** A captured outbound connection (15001); `destination` is its SO_ORIGINAL_DST. */
  outbound(socket: net.Socket, workload: Workload, destination: OriginalDestination): void
  /** A plaintext inbound connection (15006), redirected from `destination` (the app's address). */
  inbound(socket: net.Socket, workload: Workload, destination: OriginalDestination): void
  /** A connection to the workload's 15008 (HBONE; TLS starts on it). */
  hbone(socket: net.Socket, workload: Workload): void
  /**
   * Serve KIND's listening socket FD on the native engine (the handler owns FD from then on, its connections
   * are its to end on delete); undefined: node:net serves it and the handlers above get its connections.
   */
  adoptListener?(kind: InpodListenerKind, fd: number, workload: Workload): PodListener | undefined
  /** How many open connections of the workload the connection registry holds (HBONE and local fast path, either engine). */
  meshConnections?(workload: Workload): number
  /** More per-workload services, started after the listeners and stopped on delete (the DNS on 15053). */
  attach?(workload: Workload): Promise<WorkloadAttachment>
}

/** One of a workload's listeners, whichever engine serves it. */
export interface PodListener {
  /** `ip:port`, or 'closed' */
  address(): string
  close(): void
}

export interface WorkloadAttachment {
  close(): void
  /** what it listens on, for `list()` (e.g. `127.0.0.1:15053/udp`) */
  listeners: string[]
}

export interface WorkloadInfo {
  uid: string
  namespace: string
  name: string
  serviceAccount: string
  ips: string[]
  netns: string
  listeners: string[]
  /** open connections the pod is an end of, whichever engine carries them (HBONE sessions themselves are not counted) */
  connections: number
}

interface ManagedWorkload extends Workload {
  attachments: WorkloadAttachment[]
  listeners: PodListener[]
}

const MAX_WORKLOADS = 4096

export class WorkloadManager {
  private readonly workloads = new Map<string, ManagedWorkload>()

  constructor(private readonly handlers: WorkloadHandlers, private readonly onError: (error: Error, workload: Workload) => void = () => {}) {}

  /** Start serving a workload. Idempotent for the same uid + netns (ips are refreshed). */
  async add(message: InpodAdd): Promise<Workload> {
    const existing = this.workloads.get(message.uid)
    if (existing && existing.add.netns === message.netns) {
      Object.assign(existing, {add: message})
      return existing
    }

    if (existing) this.delete(message.uid)
    if (this.workloads.size >= MAX_WORKLOADS) throw new ZtError('ZT_ERR_INPOD_LIMIT', `this agent already serves ${MAX_WORKLOADS} workloads`)
    const workload: ManagedWorkload = {add: message, attachments: [], joins: new Set(), listeners: [], plainConnections: 0, sockets: new Set(), uid: message.uid}
    try {
      for (const kind of Object.keys(LISTENER_PORTS) as InpodListenerKind[]) workload.listeners.push(await this.listen(workload, kind))
      if (this.handlers.attach) workload.attachments.push(await this.handlers.attach(workload))
    } catch (error) {
      closeWorkload(workload)
      throw error
    }

    this.workloads.set(message.uid, workload)
    return workload
  }

  /** Stop serving a workload: listeners closed, its connections destroyed. Unknown uid: false. */
  delete(uid: string): boolean {
    const workload = this.workloads.get(uid)
    if (!workload) return false
    this.workloads.delete(uid)
    closeWorkload(workload)
    return true
  }

  /** Reconcile to exactly this set: add the missing, remove the unlisted. Returns per-uid errors. */
  async snapshot(adds: InpodAdd[]): Promise<Record<string, string>> {
    const wanted = new Set(adds.map((add) => add.uid))
    for (const uid of [...this.workloads.keys()]) if (!wanted.has(uid)) this.delete(uid)
    const errors: Record<string, string> = {}
    for (const add of adds) {
      try {
        await this.add(add)
      } catch (error) {
        errors[add.uid] = (error as Error).message
      }
    }

    return errors
  }

  get(uid: string): Workload | undefined {
    return this.workloads.get(uid)
  }

  /** The workload owning IP, if this agent serves it. */
  byIp(ip: string): Workload | undefined {
    for (const workload of this.workloads.values()) if (workload.add.ips.includes(ip)) return workload
    return undefined
  }

  list(): WorkloadInfo[] {
    return [...this.workloads.values()].map((workload) => ({
      connections: workload.plainConnections + (this.handlers.meshConnections?.(workload) ?? 0),
      ips: workload.add.ips,
      listeners: [
        ...workload.listeners.map((listener) => listener.address()),
        ...workload.attachments.flatMap((attachment) => attachment.listeners),
      ],
      name: workload.add.workload.name,
      namespace: workload.add.workload.namespace,
      netns: workload.add.netns,
      serviceAccount: workload.add.workload.serviceAccount,
      uid: workload.uid,
    }))
  }

  closeAll(): void {
    for (const uid of [...this.workloads.keys()]) this.delete(uid)
  }

  /** Track a socket as belonging to the workload (destroyed with it). */
  static track(workload: Workload, socket: net.Socket): void {
    workload.sockets.add(socket)
    socket.once('close', () => workload.sockets.delete(socket))
  }

  private async listen(workload: ManagedWorkload, kind: InpodListenerKind): Promise<PodListener> {
    const fd = listenInPod(workload, kind)
    return this.handlers.adoptListener?.(kind, fd, workload) ?? this.listenNode(workload, kind, fd)
  }

  private async listenNode(workload: ManagedWorkload, kind: InpodListenerKind, fd: number): Promise<PodListener> {
    const server = net.createServer({allowHalfOpen: true, noDelay: true}, (socket) => this.accept(workload, kind, socket))
    server.on('error', (error) => this.onError(error, workload))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({fd}, () => {
        server.off('error', reject)
        resolve()
      })
    })
    return {
      address() {
        const address = server.address() as net.AddressInfo | null
        return address ? `${address.address}:${address.port}` : 'closed'
      },
      close: () => server.close(),
    }
  }

  private accept(workload: ManagedWorkload, kind: InpodListenerKind, socket: net.Socket): void {
    WorkloadManager.track(workload, socket)
    socket.on('error', () => socket.destroy())
    try {
      if (kind === 'hbone') {
        this.handlers.hbone(socket, workload)
        return
      }

      const destination = originalDst((socket as unknown as {_handle: {fd: number}})._handle.fd)
      this.handlers[kind](socket, workload, destination)
    } catch (error) {
      socket.destroy()
      this.onError(error as Error, workload)
    }
  }
}

function closeWorkload(workload: ManagedWorkload): void {
  for (const listener of workload.listeners) listener.close()
  for (const attachment of workload.attachments) attachment.close()
  for (const socket of workload.sockets) socket.destroy()
  workload.sockets.clear()
  for (const join of workload.joins) join.abort()
  workload.joins.clear()
}

/** KIND's listening socket inside WORKLOAD's namespace (skip mark, SO_REUSEPORT): its fd. */
export function listenInPod(workload: Workload, kind: InpodListenerKind): number {
  return listenTcp('0.0.0.0', LISTENER_PORTS[kind], {mark: INPOD_SKIP_MARK, netns: workload.add.netns, reusePort: true})
}

/**
 * Connect to DESTINATION from inside the workload's netns with the skip mark (so the redirect rules
 * let it through), tracked with the workload. Resolves with the connected socket.
 */
export function dialFromWorkload(workload: Workload, destination: {address: string; port: number}, timeoutMs = 10_000): Promise<net.Socket> {
  const family = net.isIPv6(destination.address) ? 6 : 4
  const socket = new net.Socket({allowHalfOpen: true, fd: tcpSocket(family, {mark: INPOD_SKIP_MARK, netns: workload.add.netns})})
  WorkloadManager.track(workload, socket)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => socket.destroy(Object.assign(new Error(`timed out dialling ${destination.address}:${destination.port}`), {code: 'ETIMEDOUT'})), timeoutMs)
    timer.unref()
    socket.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    socket.connect({host: destination.address, port: destination.port}, () => {
      clearTimeout(timer)
      socket.setNoDelay(true)
      resolve(socket)
    })
  })
}

/** Join two sockets both ways (half-close preserved); destroy both on the first error. */
export function joinSockets(a: net.Socket, b: net.Socket): void {
  const destroyBoth = (): void => {
    a.destroy()
    b.destroy()
  }

  a.on('error', destroyBoth)
  b.on('error', destroyBoth)
  a.once('close', () => b.destroySoon())
  b.once('close', () => a.destroySoon())
  a.pipe(b)
  b.pipe(a)
}

/**
 * node:net's byte mover: SOCKET joined to DESTINATION dialled from inside WORKLOAD (the native engine's is
 * NativeInpod.join). Undefined when the client left meanwhile; a failed dial resets SOCKET and rejects.
 */
export async function joinFromWorkload(socket: net.Socket, workload: Workload, destination: {address: string; port: number}): Promise<PlainJoin | undefined> {
  let upstream: net.Socket
  try {
    upstream = await dialFromWorkload(workload, destination)
  } catch (error) {
    socket.resetAndDestroy()
    throw error
  }

  if (socket.destroyed) {
    upstream.destroy()
    return undefined
  }

  const closed = new Promise<PlainBytes>((resolve) => {
    let open = 2
    const one = (): void => {
      if (--open === 0) resolve({fromPlain: socket.bytesRead, toPlain: socket.bytesWritten})
    }

    socket.once('close', one)
    upstream.once('close', one)
  })
  joinSockets(socket, upstream)
  return {
    abort() {
      socket.destroy()
      upstream.destroy()
    },
    closed,
  }
}

/**
 * Plain TCP both ways from inside the pod (outbound passthrough, 15006 → the app), JOINING on either engine:
 * the pod's plain connection while open. A failed dial was answered by the mover (the client is reset:
 * it sees what it would without the mesh).
 */
export async function passthrough(joining: Promise<PlainJoin | undefined>, workload: Workload): Promise<void> {
  const joined = await joining.catch(() => undefined)
  if (!joined) return
  workload.plainConnections++
  await joined.closed
  workload.plainConnections--
}

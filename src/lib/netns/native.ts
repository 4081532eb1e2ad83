// Typed, lazily loaded access to the ztctl_netns N-API addon (src/lib/netns/native/netns.c): sockets
// (TCP listeners and clients, bound UDP sockets) created inside another network namespace, SO_MARK,
// SO_REUSEPORT, IP_TRANSPARENT and SO_ORIGINAL_DST — the things Node cannot do itself. Node adopts the
// returned fds with `server.listen({fd})`, `new net.Socket({fd})` and `dgram.createSocket().bind({fd})`.
// Also the idle agent's memory calls (malloc_trim, MADV_DONTNEED on read-only file pages; see
// src/lib/proxy/daemon/idle-trim.ts). Syscall failures and refused arguments become ZtErrors.
import {existsSync} from 'node:fs'
import {createRequire} from 'node:module'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {ZtError} from '../errors.js'

/** The mark on every socket the agent owns inside a workload's namespace (the redirect rules skip it). */
export const INPOD_SKIP_MARK = 0x539

export interface NetnsSocketOptions {
  /** path of the network namespace (/var/run/netns/NAME, /proc/PID/ns/net); undefined: the current one */
  netns?: string
  mark?: number
}

export interface ListenOptions extends NetnsSocketOptions {
  reusePort?: boolean
  transparent?: boolean
}

export interface BindUdpOptions extends NetnsSocketOptions {
  reusePort?: boolean
}

export interface OriginalDestination {
  address: string
  port: number
  family: 4 | 6
}

interface NativeBinding {
  listenTcp(host: string, port: number, options: ListenOptions): number
  tcpSocket(family: 4 | 6, options: NetnsSocketOptions): number
  tcpSocket(family: 4 | 6, options: NetnsSocketOptions, count: number): number[]
  bindUdp(host: string, port: number, options: BindUdpOptions): number
  originalDst(fd: number): OriginalDestination
  setMark(fd: number, mark: number): void
  getMark(fd: number): number
  mallocTrim(): boolean
  discardFilePages(start: bigint, length: bigint): void
}

// src/lib/netns and dist/lib/netns sit at the same depth below the repository root.
const ADDON_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../build/Release/ztctl_netns.node')

let binding: NativeBinding | undefined

function loadBinding(): NativeBinding {
  if (binding !== undefined) return binding
  if (!existsSync(ADDON_PATH)) {
    throw new ZtError('ZT_ERR_NATIVE_MISSING', `the netns addon is not built (${ADDON_PATH} does not exist)`, {
      suggestion: 'Run `npm run build` (it builds the addon with node-gyp; needs a C compiler, make and python3).',
    })
  }

  try {
    binding = createRequire(import.meta.url)(ADDON_PATH) as NativeBinding
  } catch (error) {
    throw new ZtError('ZT_ERR_NATIVE_MISSING', `the netns addon at ${ADDON_PATH} cannot be loaded: ${(error as Error).message}`, {
      cause: error,
      suggestion: 'Rebuild it with `npm run build`.',
    })
  }

  return binding
}

/** True when the addon is built and loads (for callers that can degrade, e.g. diagnostics). */
export function nativeAvailable(): boolean {
  try {
    loadBinding()
    return true
  } catch {
    return false
  }
}

function callNative<T>(what: string, netns: string | undefined, call: (native: NativeBinding) => T, code = 'ZT_ERR_NETNS'): T {
  const native = loadBinding()
  try {
    return call(native)
  } catch (error) {
    const err = error as NodeJS.ErrnoException
    const where = netns === undefined ? '' : ` in network namespace ${netns}`
    const suggestion =
      err.code === 'EPERM'
        ? 'Run the agent as root (setns needs CAP_SYS_ADMIN; SO_MARK and IP_TRANSPARENT need CAP_NET_ADMIN).'
        : err.code === 'ENOENT'
          ? 'Check the namespace path (`ip netns list`, or /proc/PID/ns/net of a running process).'
          : undefined
    throw new ZtError(code, `${what}${where} failed: ${err.message}`, {cause: error, suggestion, details: {errno: err.code}})
  }
}

/** A listening TCP socket (backlog 511) bound inside `netns`; returns its fd. */
export function listenTcp(host: string, port: number, options: ListenOptions = {}): number {
  return callNative(`listening on ${host}:${port}`, options.netns, (native) => native.listenTcp(host, port, options))
}

/** An unconnected TCP socket created inside `netns` (connect it with `new net.Socket({fd}).connect()`). */
export function tcpSocket(family: 4 | 6, options: NetnsSocketOptions = {}): number {
  return callNative('creating a socket', options.netns, (native) => native.tcpSocket(family, options))
}

/**
 * COUNT (1..64) unconnected TCP sockets created inside `netns` in one switch there and back (the switch
 * costs several times a socket: a pod's delivery sockets are made in batches).
 */
export function tcpSockets(family: 4 | 6, count: number, options: NetnsSocketOptions = {}): number[] {
  return callNative('creating sockets', options.netns, (native) => native.tcpSocket(family, options, count))
}

/**
 * A UDP socket bound to HOST:PORT inside `netns` (port 0: any); returns its fd. node:dgram adopts it with
 * `createSocket('udp4').bind({fd})`.
 */
export function bindUdp(host: string, port: number, options: BindUdpOptions = {}): number {
  return callNative(`binding UDP ${host}:${port}`, options.netns, (native) => native.bindUdp(host, port, options))
}

/** The destination a connection had before REDIRECT/DNAT (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST). */
export function originalDst(fd: number): OriginalDestination {
  return callNative('reading the original destination', undefined, (native) => native.originalDst(fd))
}

export function setMark(fd: number, mark: number): void {
  callNative('setting SO_MARK', undefined, (native) => native.setMark(fd, mark))
}

export function getMark(fd: number): number {
  return callNative('reading SO_MARK', undefined, (native) => native.getMark(fd))
}

/** glibc malloc_trim(0): give the free memory of every malloc arena back to the kernel. True when some was. */
export function mallocTrim(): boolean {
  return callNative('malloc_trim', undefined, (native) => native.mallocTrim(), 'ZT_ERR_MEMORY')
}

/**
 * madvise(MADV_DONTNEED) on [start, start + length): drops this process's resident pages of a read-only,
 * file-backed mapping (they stay in the page cache and fault back in on use). The addon re-checks
 * /proc/self/smaps and refuses (ZtError ZT_ERR_MEMORY, details.errno ZT_ERR_MADVISE_ARGS or
 * ZT_ERR_MADVISE_REFUSED) an unaligned or empty range, a gap, a writable or anonymous mapping, or one
 * holding copy-on-write pages: nothing that could lose data.
 */
export function discardFilePages(start: bigint, length: bigint): void {
  const where = typeof start === 'bigint' ? `0x${start.toString(16)}` : String(start)
  callNative(`discarding the pages of ${where}+${String(length)}`, undefined, (native) => native.discardFilePages(start, length), 'ZT_ERR_MEMORY')
}

// The in-pod DNS listener: per redirected workload, the sidecar DNS server (src/lib/sidecar/dns.ts) on
// 127.0.0.1:15053 UDP + TCP inside the pod's netns, where the redirect rules send the pod's DNS (udp/tcp
// 53, not via lo). Mesh service host names are answered with their 100.64.0.0/10 addresses; everything
// else goes to the pod's own upstream resolver over sockets created inside the pod with the skip mark
// 0x539 (so the rules neither re-capture them nor share conntrack entries: the raw-table zone rules).
//
// Why 127.0.0.1 and not 0.0.0.0: REDIRECT rewrites locally generated packets to 127.0.0.1, and the
// client's conntrack entry expects the answer from there. An unconnected UDP socket on 0.0.0.0 answers
// from the pod's own address instead; the NAT is not undone and the stub resolver drops the answer
// (measured). ztunnel binds 127.0.0.1:15053 for the same reason.
import {closeSync, existsSync} from 'node:fs'
import {createSocket} from 'node:dgram'
import net from 'node:net'

import {bindUdp, INPOD_SKIP_MARK, listenTcp, tcpSocket} from '../netns/native.js'
import {formatHostPort, type HostPort} from '../proxy/address.js'
import type {Logger} from '../proxy/observe/log.js'
import {DnsServer, upstreamFromResolvConf, type UpstreamSockets} from '../sidecar/dns.js'
import type {Workload, WorkloadAttachment} from './workloads.js'

export const INPOD_DNS_PORT = 15_053
export const INPOD_DNS_HOST = '127.0.0.1'

/**
 * The resolv.conf the pod's processes read, as seen from the agent: `ip netns exec NAME` bind-mounts
 * /etc/netns/NAME/resolv.conf; a process's netns (/proc/PID/ns/net) comes with its own root. Otherwise
 * the host's.
 */
export function resolvConfFor(netns: string, exists: (file: string) => boolean = existsSync): string {
  const named = /^\/(?:var\/)?run\/netns\/([^/]+)$/.exec(netns)
  const process = /^\/proc\/(\d+)\/ns\/net$/.exec(netns)
  const candidate = named ? `/etc/netns/${named[1]}/resolv.conf` : process ? `/proc/${process[1]}/root/etc/resolv.conf` : undefined
  return candidate !== undefined && exists(candidate) ? candidate : '/etc/resolv.conf'
}

/** Upstream sockets made inside NETNS with the skip mark. */
export function podUpstreamSockets(netns: string): UpstreamSockets {
  const options = {mark: INPOD_SKIP_MARK, netns}
  return {
    tcp(upstream) {
      const family = net.isIPv6(upstream.host) ? 6 : 4
      let fd: number
      try {
        fd = tcpSocket(family, options)
      } catch (error) {
        // The pod may be gone: the query fails (SERVFAIL), the agent does not.
        const failed = new net.Socket()
        process.nextTick(() => failed.destroy(error as Error))
        return failed
      }

      const socket = new net.Socket({fd})
      socket.setNoDelay(true)
      socket.connect(upstream.port, upstream.host)
      return socket
    },
    udp(upstream) {
      const v6 = net.isIPv6(upstream.host)
      const socket = createSocket(v6 ? 'udp6' : 'udp4')
      socket.bind({fd: bindUdp(v6 ? '::' : '0.0.0.0', 0, options)})
      return socket
    },
  }
}

export interface WorkloadDnsOptions {
  logger: () => Logger
  /** the mesh's service names → addresses, read when a server starts and on refresh() */
  records: () => ReadonlyMap<string, string>
  /** where a pod's resolv.conf is read (tests) */
  resolvConf?: (netns: string) => string
}

/** The DNS servers of all workloads: one per pod (its own upstream), all answering the same mesh names. */
export class WorkloadDnsServers {
  private readonly servers = new Map<string, {server: DnsServer; upstream?: HostPort}>()

  constructor(private readonly options: WorkloadDnsOptions) {}

  /** Start WORKLOAD's DNS (the WorkloadManager's attach hook). */
  async attach(workload: Workload): Promise<WorkloadAttachment> {
    const {netns} = workload.add
    const resolvConf = (this.options.resolvConf ?? resolvConfFor)(netns)
    // Read when the workload is added (again on an agent restart): a pod's resolver rarely changes.
    const upstream = await upstreamFromResolvConf(resolvConf)
    const listen = {host: INPOD_DNS_HOST, port: INPOD_DNS_PORT}
    const socketOptions = {mark: INPOD_SKIP_MARK, netns, reusePort: true}
    const udp = bindUdp(listen.host, listen.port, socketOptions)
    let tcp: number
    try {
      tcp = listenTcp(listen.host, listen.port, socketOptions)
    } catch (error) {
      closeSync(udp)
      throw error
    }

    const server = new DnsServer({listen, listenFds: {tcp, udp}, logger: this.options.logger(), records: this.options.records(), upstream, upstreamSockets: podUpstreamSockets(netns)})
    await server.start()
    this.servers.set(workload.uid, {server, upstream})
    this.options.logger().info({address: formatHostPort(listen), component: 'dns', resolvConf, uid: workload.uid, upstream: upstream ? formatHostPort(upstream) : 'none (REFUSED)'}, 'listener established')
    return {
      close: () => {
        server.close()
        if (this.servers.get(workload.uid)?.server === server) this.servers.delete(workload.uid)
      },
      listeners: [`${formatHostPort(listen)}/udp`, `${formatHostPort(listen)}/tcp`],
    }
  }

  /** The mesh's names changed: every pod answers the new set. */
  refresh(): void {
    const records = this.options.records()
    for (const {server} of this.servers.values()) server.setRecords(records)
  }

  /** Per workload: its upstream and counters (config dump, tests). */
  list(): {uid: string; upstream?: string; stats: DnsServer['stats']}[] {
    return [...this.servers].map(([uid, {server, upstream}]) => ({stats: {...server.stats}, uid, ...(upstream ? {upstream: formatHostPort(upstream)} : {})}))
  }
}

// Sidecar modes of `agent run` (OpenZiti's `tunnel proxy|tproxy`), hooked into the agent's
// configuration loop: for the services this identity may dial, either bind each one to a loopback port
// (proxy: no privileges, no DNS changes) or capture their intercept addresses in this network namespace
// and answer their host names from 100.64.0.0/10 (tproxy: NET_ADMIN). Both carry connections through
// the agent's inbound-tunnel machinery: the listeners are inbound tunnels synthesised from the mesh
// state, keyed `SERVICE@AGENT~MODE` so they never clash with configured ones.
import {createHash} from 'node:crypto'
import {readFile, writeFile} from 'node:fs/promises'
import {isIP} from 'node:net'

import type {InboundTunnel} from '../config/types.js'
import {ExitCode, ZtError} from '../errors.js'
import {formatHostPort, type HostPort, parseHostPort} from '../proxy/address.js'
import type {Logger} from '../proxy/observe/log.js'
import type {MeshState} from '../proxy/state/state.js'
import {DnsServer, parseDnsUpstream, upstreamFromResolvConf} from './dns.js'
import {type InterceptPlan, planIntercepts} from './services.js'
import {applySidecarRules, assertNetAdmin, type Exclusion, type RedirectRule, removeSidecarRules, sidecarRuleText} from './rules.js'

export type SidecarMode = 'proxy' | 'tproxy'
export const SIDECAR_MODES: readonly SidecarMode[] = ['proxy', 'tproxy']
export const DEFAULT_DNS_LISTEN = '127.0.0.1:53'
/** Automatic proxy ports: a stable spot per service name in this range (collisions probe onwards). */
const AUTO_PORT_BASE = 20_000
const AUTO_PORT_SPAN = 10_000

export interface SidecarOptions {
  /** tproxy: where the DNS server listens (UDP + TCP) */
  dnsListen?: string
  /** tproxy: `IP[:PORT]` of the resolver for other names; default: the first nameserver of /etc/resolv.conf */
  dnsUpstream?: string
  mode: SidecarMode
  /** proxy: `tcp/NAME` → port (`--proxy-port tcp/NAME=PORT`); others get an automatic stable port */
  proxyPorts?: Record<string, number>
  /** tproxy: rewrite this resolv.conf to use our DNS first (restored on exit) — only when asked */
  resolvConf?: string
}

export interface SidecarHooks {
  /** after the listeners are bound: install rules and DNS names for this state */
  applied(state: MeshState, inboundAddresses: Readonly<Record<string, string>>): Promise<void>
  close(): Promise<void>
  /** the inbound tunnels (listeners) this mode wants for STATE */
  listeners(state: MeshState): InboundTunnel[]
}

/** `tcp/NAME=PORT` → [service, port]; usage error otherwise. */
export function parseProxyPort(text: string): [string, number] {
  const match = /^(tcp\/[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?)=(\d{1,5})$/.exec(text)
  const port = Number(match?.[3])
  if (!match || port < 1 || port > 65_535) {
    throw new ZtError('ZT_ERR_USAGE', `--proxy-port ${JSON.stringify(text)} is not tcp/NAME=PORT`, {exit: ExitCode.usage, suggestion: 'e.g. --proxy-port tcp/web=8080'})
  }

  return [match[1], port]
}

/** Ports for SERVICES: the explicit ones, then a hash-chosen stable port per service (same set → same ports). */
export function proxyPorts(services: readonly string[], explicit: Readonly<Record<string, number>> = {}): Map<string, number> {
  const ports = new Map<string, number>()
  const taken = new Set(Object.values(explicit))
  for (const service of [...services].sort()) {
    const fixed = explicit[service]
    if (fixed !== undefined) {
      ports.set(service, fixed)
      continue
    }

    const start = createHash('sha256').update(service).digest().readUInt32BE(0) % AUTO_PORT_SPAN
    for (let probe = 0; probe < AUTO_PORT_SPAN; probe++) {
      const port = AUTO_PORT_BASE + ((start + probe) % AUTO_PORT_SPAN)
      if (taken.has(port)) continue
      taken.add(port)
      ports.set(service, port)
      break
    }
  }

  return ports
}

const listenerAgent = (state: MeshState, mode: SidecarMode): string => `${state.self.name}~${mode}`

export async function startSidecar(options: SidecarOptions, logger: () => Logger): Promise<SidecarHooks> {
  return options.mode === 'proxy' ? proxySidecar(options) : tproxySidecar(options, logger)
}

function proxySidecar(options: SidecarOptions): SidecarHooks {
  return {
    async applied() {},
    async close() {},
    listeners(state) {
      const {services} = planIntercepts(state)
      const ports = proxyPorts(services.map((entry) => entry.service), options.proxyPorts)
      return [...ports].map(([service, port]) => ({agent: listenerAgent(state, 'proxy'), listen: `127.0.0.1:${port}`, service}))
    },
  }
}

async function tproxySidecar(options: SidecarOptions, logger: () => Logger): Promise<SidecarHooks> {
  await assertNetAdmin()
  const dnsListen = parseHostPort(options.dnsListen ?? DEFAULT_DNS_LISTEN)
  if (!dnsListen) {
    throw new ZtError('ZT_ERR_USAGE', `--dns-listen ${JSON.stringify(options.dnsListen)} is not IP:PORT`, {exit: ExitCode.usage, suggestion: `e.g. --dns-listen ${DEFAULT_DNS_LISTEN}`})
  }

  const upstream: HostPort | undefined = options.dnsUpstream ? parseDnsUpstream(options.dnsUpstream) : await upstreamFromResolvConf('/etc/resolv.conf', dnsListen.host)
  // A killed earlier run may have left its chain behind; start from nothing.
  await removeSidecarRules()
  const dns = new DnsServer({listen: dnsListen, logger: logger(), upstream})
  await dns.start()
  logger().info({address: formatHostPort(dns.address!), component: 'dns', upstream: upstream ? formatHostPort(upstream) : 'none (REFUSED)'}, 'listener established')
  const restoreResolvConf = options.resolvConf ? await pointResolvConfAt(options.resolvConf, dns.address!.host) : undefined
  let installed: string | undefined
  let plan: InterceptPlan | undefined
  let planFor: MeshState | undefined
  const planOf = (state: MeshState): InterceptPlan => {
    if (planFor !== state) {
      plan = planIntercepts(state)
      planFor = state
    }

    return plan!
  }

  return {
    async applied(state, inboundAddresses) {
      const current = planOf(state)
      if (current.invalid.length > 0) logger().warn({invalid: current.invalid}, 'intercept entries skipped: not HOST|IP|CIDR[:PORT]')
      const rules: RedirectRule[] = []
      for (const {intercepts, service} of current.services) {
        const bound = parseHostPort(inboundAddresses[`${service}@${listenerAgent(state, 'tproxy')}`] ?? '')
        if (!bound) continue
        for (const intercept of intercepts) {
          const destination = intercept.kind === 'cidr' ? intercept.cidr : `${current.dnsRecords.get(intercept.host)}/32`
          rules.push({destination, port: intercept.port, service, toPort: bound.port})
        }
      }

      const exclusions: Exclusion[] = Object.values(state.snapshot.agent)
        .map((agent) => parseHostPort(agent.hbone))
        .filter((address): address is HostPort => address !== undefined && isIP(address.host) === 4)
        .map((address) => ({destination: `${address.host}/32`, port: address.port}))
      dns.setRecords(current.dnsRecords)
      const text = sidecarRuleText(rules, exclusions)
      if (text === installed) return
      await applySidecarRules(text)
      installed = text
      logger().info({names: current.dnsRecords.size, rules: rules.length}, 'interception rules installed')
    },
    async close() {
      dns.close()
      await removeSidecarRules()
      await restoreResolvConf?.()
      logger().info('interception rules removed')
    },
    listeners(state) {
      return planOf(state).services
        .filter((entry) => entry.intercepts.length > 0)
        .map(({service}) => ({agent: listenerAgent(state, 'tproxy'), listen: '127.0.0.1:0', service}))
    },
  }
}

/**
 * Put `nameserver DNS_HOST` first in FILE (keeping the rest as fallback); returns the undo. Written in
 * place, not renamed: `ip netns exec` bind-mounts /etc/netns/NAME/resolv.conf, and a rename would leave
 * the mount on the old file.
 */
async function pointResolvConfAt(file: string, dnsHost: string): Promise<() => Promise<void>> {
  const original = await readFile(file, 'utf8').catch(() => '')
  const rest = original.split('\n').filter((line) => line.trim() !== `nameserver ${dnsHost}`).join('\n')
  await writeFile(file, `# written by ztctl agent run --mode tproxy; restored on exit\nnameserver ${dnsHost}\n${rest}`)
  return () => writeFile(file, original)
}

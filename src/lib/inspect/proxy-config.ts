// proxy-config: read an agent's /config_dump (as istioctl ztunnel-config does) and shape the views.
// The agent is found by --admin ADDR, by the name of a local agent (its ready file in the ztctl home,
// or the admin socket of an agent with --no-listen), or at the default admin address; --file reads a
// saved dump instead. Hubs are found the same way (`ztctl hub status`).
import {existsSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import path from 'node:path'

import {adminGet, adminUrl} from './admin-get.js'
import {ExitCode, ZtError} from '../errors.js'
import type {Home} from '../home/home.js'
import type {ConfigDump} from '../proxy/daemon/agent.js'
import type {ReadyFile} from '../proxy/daemon/launch.js'

export const DEFAULT_ADMIN = '127.0.0.1:15000'
export const DEFAULT_HUB_ADMIN = '127.0.0.1:15010'

export interface DumpSource {
  admin?: string
  agent?: string
  file?: string
  home: Home
}

/** Where the ready files (and --no-listen admin sockets) of local agents (or hubs) live. */
export const localProcessDir = (home: Home, kind: 'agents' | 'hubs'): string => path.join(home.dataDir, kind)
/** The default admin socket of a local agent started with --no-listen. */
export const defaultAdminSocket = (home: Home, name: string): string => path.join(localProcessDir(home, 'agents'), `${name}.sock`)

export async function resolveAdminAddress(source: DumpSource, kind: 'agents' | 'hubs' = 'agents'): Promise<string> {
  if (source.admin) return source.admin
  if (!source.agent) return kind === 'hubs' ? DEFAULT_HUB_ADMIN : DEFAULT_ADMIN
  const readyFile = path.join(localProcessDir(source.home, kind), `${source.agent}.json`)
  try {
    const ready = JSON.parse(await readFile(readyFile, 'utf8')) as ReadyFile
    if (ready.addresses.admin) return ready.addresses.admin
  } catch {
    // fall through to the socket, then to the error below
  }

  const socket = path.join(localProcessDir(source.home, kind), `${source.agent}.sock`)
  if (existsSync(socket)) return `unix:${socket}`
  const what = kind === 'hubs' ? 'hub' : 'agent'
  throw new ZtError('ZT_ERR_AGENT_NOT_FOUND', `no local ${what} named "${source.agent}" (looked for ${readyFile} and ${socket})`, {
    exit: ExitCode.notFound,
    suggestion: `pass its admin address with --admin HOST:PORT or unix:PATH (${what}s started with --ready-file under $ZTCTL_HOME/${kind}/ are found by name)`,
  })
}

/** GET PATH from a local agent's or hub's admin side door; its body, or a ZtError in words. */
export async function fetchAdmin(admin: string, adminPath: string, what = 'agent'): Promise<string> {
  const url = adminUrl(admin, adminPath)
  let response: {body: string; status: number}
  try {
    response = await adminGet(admin, adminPath)
  } catch (error) {
    throw new ZtError('ZT_ERR_AGENT_UNREACHABLE', `cannot reach the ${what}'s admin endpoint at ${url}: ${(error as Error).message}`, {
      cause: error,
      exit: ExitCode.unreachable,
      suggestion: `check that the ${what} is running and pass its admin address with --admin HOST:PORT or unix:PATH (default ${what === 'hub' ? DEFAULT_HUB_ADMIN : DEFAULT_ADMIN})`,
    })
  }

  if (response.status !== 200) {
    throw new ZtError('ZT_ERR_AGENT_UNREACHABLE', `${url} answered HTTP ${response.status}`, {
      exit: ExitCode.unreachable,
      suggestion: `is that address the ${what}'s admin port, not its metrics or HBONE port?`,
    })
  }

  return response.body
}

export async function fetchConfigDump(source: DumpSource): Promise<ConfigDump> {
  if (source.file) return parseDump(await readDumpFile(source.file), source.file)
  const admin = await resolveAdminAddress(source)
  return parseDump(await fetchAdmin(admin, '/config_dump'), adminUrl(admin, '/config_dump'))
}

/** One request to the agent's admin port (found by name, --admin or the default), errors in words. */
export async function adminRequest(source: DumpSource, pathAndQuery: string, init: RequestInit = {}): Promise<{response: Response; url: string}> {
  const admin = await resolveAdminAddress(source)
  const url = `http://${admin}${pathAndQuery}`
  let response: Response
  try {
    response = await fetch(url, init)
  } catch (error) {
    throw new ZtError('ZT_ERR_AGENT_UNREACHABLE', `cannot reach the agent's admin endpoint at ${url}: ${(error as Error & {cause?: Error}).cause?.message ?? (error as Error).message}`, {
      cause: error,
      exit: ExitCode.unreachable,
      suggestion: 'check that `ztctl agent run` is running and pass its admin address with --admin HOST:PORT (default 127.0.0.1:15000)',
    })
  }

  if (!response.ok) {
    const text = (await response.text().catch(() => '')).trim().slice(0, 300)
    throw new ZtError('ZT_ERR_AGENT_UNREACHABLE', `${url} answered HTTP ${response.status}${text ? `: ${text}` : ''}`, {
      exit: response.status === 400 ? ExitCode.usage : ExitCode.unreachable,
      suggestion: 'is that address an agent admin port (15000), not its metrics or HBONE port?',
    })
  }

  return {response, url}
}

async function readDumpFile(file: string): Promise<string> {
  try {
    return file === '-' ? await readStdin() : await readFile(file, 'utf8')
  } catch (error) {
    throw new ZtError('ZT_ERR_NOT_FOUND', `cannot read ${file}: ${(error as Error).message}`, {exit: ExitCode.notFound})
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

function parseDump(text: string, origin: string): ConfigDump {
  try {
    const dump = JSON.parse(text) as ConfigDump
    if (Array.isArray(dump.workloads) && Array.isArray(dump.certificates)) return dump
  } catch {
    // reported below
  }

  throw new ZtError('ZT_ERR_BAD_DUMP', `${origin} is not an agent config dump`, {
    suggestion: 'save one with `ztctl proxy-config all AGENT -o json > dump.json`',
  })
}

export type View = 'connections' | 'hubs' | 'policies' | 'secrets' | 'services' | 'workloads'

export interface WorkloadRow {address: string; connections: string; name: string; namespace: string; node: string; protocol: string; spiffe: string; waypoint: string}
export interface ServiceRow {endpoints: string; hostedHere: boolean; name: string; namespace: string; vip: string; waypoint: string}
export interface PolicyRow {action: string; match: string; name: string; namespace: string; scope: string}
export interface SecretRow {name: string; notAfter: string; notBefore: string; serial: string; status: string; type: string; valid: boolean}
export interface ConnectionRow {direction: string; local: string; protocol: string; remote: string; remoteTarget: string; workload: string}
export interface HubRow {address: string; error: string; hub: string; rtt: string; state: string; streams: number}

/** `spiffe://td/ns/NS/sa/SA` → NS; other SPIFFE IDs have no namespace. */
function namespaceOf(spiffe: string | undefined): string {
  return /\/ns\/([^/]+)\//.exec(spiffe ?? '')?.[1] ?? '-'
}

export function workloadRows(dump: ConfigDump): WorkloadRow[] {
  return dump.workloads
    .map((w) => ({
      // pods published by node agents carry their own namespace, IPs and node; agents are their own node
      address: w.ips?.join(',') ?? w.hbone, connections: w.connections === undefined ? '-' : String(w.connections), name: w.name, namespace: w.namespace ?? namespaceOf(w.spiffe), node: w.node ?? w.name,
      protocol: w.protocol, spiffe: w.spiffe, waypoint: 'None',
    }))
    .sort((a, b) => a.name.localeCompare(b.name))
}

export function serviceRows(dump: ConfigDump): ServiceRow[] {
  const listeners = new Map(dump.inbound.map((listener) => [listener.service, listener.address]))
  return dump.services
    .map((s) => {
      // A Kubernetes Service is `namespace/name` with its ClusterIPs; a mesh service has no namespace.
      const [namespace, name] = s.vips ? s.name.split('/') : ['-', s.name]
      return {
        endpoints: s.endpoints.map((e) => `${e.agent}→${e.target}`).join(', ') || 'none',
        hostedHere: s.hostedHere,
        name,
        namespace,
        vip: s.vips?.join(',') ?? listeners.get(s.name) ?? 'None',
        waypoint: 'None',
      }
    })
    .sort((a, b) => a.name.localeCompare(b.name))
}

export function policyRows(dump: ConfigDump): PolicyRow[] {
  const any = (values: readonly (number | string)[], label: string): string[] => (values.length === 0 ? [] : [`${label}=${values.join(',')}`])
  return dump.policies
    .map((p) => ({
      action: p.action,
      match: [...any(p.from, 'from'), ...any(p.sourceCidrs, 'cidr'), ...any(p.ports, 'port')].join(' ') || 'any',
      name: p.name,
      namespace: '-',
      scope: p.services.length === 0 ? 'Global' : p.services.join(','),
    }))
    .sort((a, b) => a.name.localeCompare(b.name))
}

export function secretRows(dump: ConfigDump, now = Date.now()): SecretRow[] {
  return dump.certificates.flatMap((certificate) => {
    const chain = certificate.certChain.map((cert, index) => ({cert, type: index === 0 ? 'Leaf' : 'Intermediate'}))
    const roots = certificate.rootCerts.map((cert) => ({cert, type: 'Root'}))
    return [...chain, ...roots].map(({cert, type}) => ({
      name: certificate.identity,
      notAfter: cert.expirationTime,
      notBefore: cert.validFrom,
      serial: cert.serialNumber.toLowerCase(),
      status: type === 'Leaf' ? (certificate.state === 'Available' ? 'Available' : 'Unavailable') : 'Available',
      type,
      valid: Date.parse(cert.validFrom) <= now && now < Date.parse(cert.expirationTime),
    }))
  })
}

export function connectionRows(dump: ConfigDump): ConnectionRow[] {
  return dump.connections.map((c) => ({
    direction: c.direction,
    local: c.sourceAddress,
    protocol: 'HBONE',
    remote: c.destinationAddress,
    remoteTarget: c.hboneTarget,
    workload: dump.agent.name,
  }))
}

export function hubRows(dump: ConfigDump): HubRow[] {
  return (dump.hubs ?? []).map((h) => ({
    address: h.address, error: h.lastError ?? '', hub: h.hub ?? '-', rtt: h.rttMs === undefined ? '-' : `${h.rttMs.toFixed(2)}ms`, state: h.state, streams: h.streams,
  }))
}

// The agents the dashboard reads directly: local agents found through their ready files in the ztctl home
// (as `proxy-config AGENT` finds them) and any named with --agent-admin. From each: /config_dump on the
// admin port and /metrics on the metrics port, plain HTTP with a loopback Host, no Origin, bounded in size
// and time. An agent out of reach is a problem to show, never an error.
import {readdir, readFile} from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'

import type {Home} from '../home/home.js'
import type {ConfigDump} from '../proxy/daemon/agent.js'
import {processAlive} from '../util/process-alive.js'
import {parsePrometheusText, type Sample} from './prom-text.js'

const MAX_BODY_BYTES = 8 * 1024 * 1024
const TIMEOUT_MS = 1500

export interface AgentReading {
  admin: string
  dump?: ConfigDump
  /** why the agent could not be read */
  problem?: string
  samples: Sample[]
}

/** GET http://ADDRESS/PATH: the body, or an Error saying why not. */
export function getText(address: string, urlPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.get(`http://${address}${urlPath}`, {agent: false, headers: {accept: '*/*', connection: 'close'}, timeout: TIMEOUT_MS}, (response) => {
      const chunks: Buffer[] = []
      let size = 0
      response.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > MAX_BODY_BYTES) request.destroy(new Error(`answer larger than ${MAX_BODY_BYTES} bytes`))
        else chunks.push(chunk)
      })
      response.on('end', () => {
        if (response.statusCode === 200) resolve(Buffer.concat(chunks).toString('utf8'))
        else reject(new Error(`HTTP ${response.statusCode}`))
      })
      response.on('error', reject)
    })
    request.on('timeout', () => request.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)))
    request.on('error', reject)
  })
}

/** A wildcard listen address is reached on loopback. */
export function dialable(address: string): string {
  if (address.startsWith('0.0.0.0:')) return `127.0.0.1:${address.slice(8)}`
  if (address.startsWith('[::]:')) return `[::1]:${address.slice(5)}`
  return address
}

/** A ready file without a pid is trusted; one whose process is gone is stale. */
const isAlive = (pid: unknown): boolean => typeof pid !== 'number' || processAlive(pid)

/** name → admin address: ready files of running agents under HOME/agents/, then EXPLICIT (which wins). */
export async function discoverAgents(home: Home, explicit: Record<string, string> = {}): Promise<Map<string, string>> {
  const found = new Map<string, string>()
  const dir = path.join(home.dataDir, 'agents')
  const files = await readdir(dir).catch(() => [] as string[])
  await Promise.all(files.filter((file) => file.endsWith('.json')).slice(0, 256).map(async (file) => {
    try {
      const ready = JSON.parse(await readFile(path.join(dir, file), 'utf8')) as {addresses?: {admin?: unknown}; pid?: unknown}
      if (typeof ready.addresses?.admin === 'string' && isAlive(ready.pid)) found.set(file.slice(0, -5), dialable(ready.addresses.admin))
    } catch {
      // a ready file being rewritten, or not one: skip it this round
    }
  }))
  for (const [name, admin] of Object.entries(explicit)) found.set(name, admin)
  return found
}

/** Read one agent: its dump, then its metrics; a dump of another agent (a stale ready file) is refused. */
export async function readAgent(name: string, admin: string): Promise<AgentReading> {
  let dump: ConfigDump
  try {
    dump = JSON.parse(await getText(admin, '/config_dump')) as ConfigDump
  } catch (error) {
    return {admin, problem: `cannot read ${name}'s /config_dump at ${admin}: ${(error as Error).message}`, samples: []}
  }

  if (dump?.agent?.name !== name) return {admin, problem: `${admin} is not ${name}'s admin port (it answers as ${String(dump?.agent?.name)})`, samples: []}
  const metrics = dump.config?.addresses?.metrics
  if (!metrics) return {admin, dump, problem: `${name} serves no metrics`, samples: []}
  try {
    const {samples} = parsePrometheusText(await getText(dialable(metrics), '/metrics'), {prefix: 'istio_tcp_'})
    return {admin, dump, samples}
  } catch (error) {
    return {admin, dump, problem: `cannot read ${name}'s metrics at ${metrics}: ${(error as Error).message}`, samples: []}
  }
}

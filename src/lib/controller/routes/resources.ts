// Generic configuration resources and the agents' status (admin only).
import {RESOURCE_KINDS, type ResourceKind, resourceKey, type ResourceKinds} from '../../config/types.js'
import {ExitCode, ZtError} from '../../errors.js'
import {isReservedAppHost} from '../../proxy/state/apps.js'
import {checkAppResource} from './apps.js'
import type {Store} from '../store/store.js'
import type {Route} from './types.js'
import {asObject, badRequest} from './validate.js'

/** Kinds an admin may write; the others are derived by the controller. */
const WRITABLE = ['app', 'exit', 'file', 'inbound', 'outbound', 'policy', 'proxy'] as const
type WritableKind = (typeof WRITABLE)[number]

function checkKind(kind: string): ResourceKind {
  if (!(RESOURCE_KINDS as readonly string[]).includes(kind)) {
    throw new ZtError('ZT_ERR_NOT_FOUND', `there is no resource kind "${kind}"`, {
      exit: ExitCode.notFound,
      suggestion: `kinds: ${RESOURCE_KINDS.join(', ')}`,
    })
  }

  return kind as ResourceKind
}

function checkWritable(kind: string): WritableKind {
  const checked = checkKind(kind)
  if (!(WRITABLE as readonly string[]).includes(checked)) {
    throw badRequest(`${kind} resources are maintained by the controller`, `only ${WRITABLE.join(', ')} can be written`)
  }

  return checked as WritableKind
}

const isStringList = (value: unknown): boolean => Array.isArray(value) && value.length <= 1024 && value.every((item) => typeof item === 'string')
const isPort = (value: unknown): boolean => typeof value === 'number' && Number.isInteger(value) && value > 0 && value < 65_536

/** Shape checks of what agents will act on; the CLI validates the meaning before sending. */
function checkValue(kind: WritableKind, body: unknown): ResourceKinds[WritableKind] {
  if (kind === 'app' || kind === 'file') return checkAppResource(kind, body)
  const value = asObject(body, `the ${kind} resource`)
  const problems: string[] = []
  const expect = (ok: boolean, message: string): void => {
    if (!ok) problems.push(message)
  }

  if (kind === 'exit') {
    expect(typeof value.agent === 'string' && value.agent !== '', '"agent" must be a string')
    for (const field of ['allow', 'targets', 'exclusions']) expect(isStringList(value[field]), `"${field}" must be a list of strings`)
  } else if (kind === 'proxy') {
    expect(typeof value.agent === 'string' && value.agent !== '', '"agent" must be a string')
    expect(typeof value.listen === 'string' && value.listen !== '', '"listen" must be a string')
    expect(Array.isArray(value.users) && value.users.length <= 64 && value.users.every((user) => {
      const u = user as Record<string, unknown>
      return typeof u === 'object' && u !== null && typeof u.name === 'string' && typeof u.passwordHash === 'string' && u.passwordHash.startsWith('scrypt$')
    }), '"users" must be a list of at most 64 {name, passwordHash: "scrypt$…"}')
  } else if (kind === 'policy') {
    expect(typeof value.name === 'string' && value.name !== '', '"name" must be a string')
    expect(value.action === 'ALLOW' || value.action === 'DENY', '"action" must be ALLOW or DENY')
    for (const field of ['from', 'services', 'sourceCidrs']) expect(isStringList(value[field]), `"${field}" must be a list of strings`)
    expect(Array.isArray(value.ports) && value.ports.every((port) => isPort(port)), '"ports" must be a list of ports')
  } else {
    expect(typeof value.agent === 'string' && value.agent !== '', '"agent" must be a string')
    expect(typeof value.service === 'string' && value.service !== '', '"service" must be a string')
    if (kind === 'inbound') {
      expect(typeof value.listen === 'string' && value.listen !== '', '"listen" must be a string')
      expect(value.idleTimeout === undefined || (Number.isInteger(value.idleTimeout) && (value.idleTimeout as number) > 0 && (value.idleTimeout as number) <= 86_400), '"idleTimeout" must be 1–86400 seconds')
    } else {
      expect(isStringList(value.allow), '"allow" must be a list of strings')
      expect(Array.isArray(value.targets) && value.targets.length > 0 && value.targets.every((target) => {
        const t = target as Record<string, unknown>
        return typeof t === 'object' && t !== null && typeof t.host === 'string' && isPort(t.port)
          && (t.weight === undefined || (typeof t.weight === 'number' && t.weight > 0))
      }), '"targets" must be a non-empty list of {host, port, weight?}')
      const reserved = Array.isArray(value.targets) && value.targets.find((target) => isReservedAppHost(String((target as {host?: unknown}).host)))
      expect(!reserved, `target host ${(reserved as {host?: unknown} | undefined)?.host} is reserved for the agents' apps`)
    }
  }

  if (problems.length > 0) throw badRequest(`invalid ${kind} resource: ${problems.join('; ')}`)
  return value as unknown as ResourceKinds[WritableKind]
}

export const resourceRoutes: Route[] = [
  {
    access: 'admin',
    async handle({params, services}) {
      return services.store.listResources(checkKind(params.kind))
    },
    method: 'GET',
    path: '/v1/resources/:kind',
  },
  {
    access: 'admin',
    async handle({body, params, services}) {
      const kind = checkWritable(params.kind)
      const value = checkValue(kind, body)
      const key = resourceKey(kind, value)
      if (key !== params.key) throw badRequest(`the key in the path ("${params.key}") does not match the resource ("${key}")`)
      return {version: await services.store.putResource(kind, key, value)}
    },
    method: 'PUT',
    path: '/v1/resources/:kind/:key',
  },
  {
    access: 'admin',
    async handle({params, services}) {
      return {version: await services.store.deleteResource(checkWritable(params.kind), params.key)}
    },
    method: 'DELETE',
    path: '/v1/resources/:kind/:key',
  },
  {
    access: 'admin',
    async handle({services}) {
      const [{items, version}, statuses] = await Promise.all([services.store.listResources('agent'), services.store.listAgentStatus()])
      const statusByName = new Map(statuses.map((status) => [status.name, status]))
      const acks = new Map<number, Promise<number>>()
      const agents = await Promise.all(items.map(async (agent) => {
        const status = statusByName.get(agent.name)
        // Connected here, or (with several replicas) to another replica that keeps its record fresh.
        const here = services.hub.isOnline(agent.name)
        const acked = status?.ackedVersion
        return {
          ackedVersion: acked === undefined ? undefined : await memo(acks, acked, () => effectiveAck(services.store, acked, version)),
          hbone: agent.hbone,
          lastSeen: here ? new Date().toISOString() : status?.lastSeen,
          hubs: services.hub.hubsOf(agent.name),
          name: agent.name,
          online: here || status?.connected === true,
          resources: status?.resources ?? [],
          software: status?.software,
          spiffe: agent.spiffe,
        }
      }))
      return {agents, version}
    },
    method: 'GET',
    path: '/v1/agents',
  },
]

/**
 * The version an agent has, in this replica's numbering: another replica may have sent it a revision this
 * one never published (revisions are cuts at resourceVersions, each replica at its own): when nothing
 * changed between its ack and our version, it has ours.
 */
async function effectiveAck(store: Store, acked: number, version: number): Promise<number> {
  if (acked >= version) return acked
  const delta = await store.changesSince(acked)
  return delta && delta.changes.length === 0 ? version : acked
}

function memo<K, V>(cache: Map<K, Promise<V>>, key: K, make: () => Promise<V>): Promise<V> {
  let value = cache.get(key)
  if (!value) {
    value = make()
    cache.set(key, value)
  }

  return value
}

// The apps' side of the controller (issue 16): shape checks of the `app` and `file` resources admins
// write, and the directory every identity may read to use the apps: which agents host which app, where
// to dial them, which files they publish. The allow lists stay with the agents, which admit each stream.
import {type AgentApp, APP_NAMES, type HubAttachment, type PublishedFile} from '../../config/types.js'
import {identitySpiffe, type Route} from './types.js'
import {asObject, badRequest} from './validate.js'

const isStringList = (value: unknown, max = 256): boolean => Array.isArray(value) && value.length <= max && value.every((item) => typeof item === 'string' && item.length <= 4096)

/** Check an `app` or `file` resource's shape; the CLI checks the meaning before sending. */
export function checkAppResource(kind: 'app' | 'file', body: unknown): AgentApp | PublishedFile {
  const value = asObject(body, `the ${kind} resource`)
  const problems: string[] = []
  const expect = (ok: boolean, message: string): void => {
    if (!ok) problems.push(message)
  }

  expect(typeof value.agent === 'string' && value.agent !== '', '"agent" must be a string')
  if (kind === 'file') {
    expect(typeof value.name === 'string' && value.name !== '' && value.name.length <= 255 && !value.name.includes('@'), '"name" must be a file name (no "@")')
    expect(typeof value.path === 'string' && value.path.startsWith('/'), '"path" must be an absolute path')
  } else {
    expect((APP_NAMES as readonly unknown[]).includes(value.app), `"app" must be one of ${APP_NAMES.join(', ')}`)
    expect(typeof value.enabled === 'boolean', '"enabled" must be true or false')
    expect(isStringList(value.allow), '"allow" must be a list of strings')
    for (const field of ['commands', 'shell']) expect(value[field] === undefined || isStringList(value[field]), `"${field}" must be a list of strings`)
    expect(value.scriptDir === undefined || (typeof value.scriptDir === 'string' && value.scriptDir.startsWith('/')), '"scriptDir" must be an absolute path')
    expect(value.anyCommand === undefined || typeof value.anyCommand === 'boolean', '"anyCommand" must be true or false')
  }

  if (problems.length > 0) throw badRequest(`invalid ${kind} resource: ${problems.join('; ')}`)
  return value as unknown as AgentApp | PublishedFile
}

/** A hub an agent is attached to now, as the agent dials it (a client reaches an agent without HBONE address through it). */
export interface DirectoryHub {
  address: string
  spiffe: string
}

/** GET /v1/apps: what a mesh identity needs to reach the apps. */
export interface AppDirectory {
  /** agents hosting at least one enabled app */
  agents: {apps: string[]; hbone: string; hubs: DirectoryHub[]; name: string; online: boolean; spiffe: string}[]
  /** files published on agents whose file app is on */
  files: {agent: string; name: string}[]
  /** serials the client must not accept from an agent */
  revokedSerials: string[]
  version: number
}

export const appRoutes: Route[] = [
  {
    access: 'identity',
    async handle({services}): Promise<AppDirectory> {
      const {store} = services
      const [apps, files, agents, revocations] = await Promise.all([store.listResources('app'), store.listResources('file'), store.listResources('agent'), store.listResources('revocation')])
      const hosting = new Map<string, string[]>()
      for (const app of apps.items) if (app.enabled) hosting.set(app.agent, [...(hosting.get(app.agent) ?? []), app.app].sort())
      return {
        agents: agents.items.filter((agent) => hosting.has(agent.name))
          .map((agent) => ({
            apps: hosting.get(agent.name)!, hbone: agent.hbone, hubs: connectedHubs(services.hub.hubsOf(agent.name), services.trustDomain), name: agent.name,
            online: services.hub.isOnline(agent.name), spiffe: agent.spiffe,
          })),
        files: files.items.filter((file) => hosting.get(file.agent)?.includes('file')).map(({agent, name}) => ({agent, name})),
        revokedSerials: revocations.items.map((revocation) => revocation.serial),
        version: Math.max(apps.version, files.version, agents.version, revocations.version),
      }
    },
    method: 'GET',
    path: '/v1/apps',
  },
]

/** An agent's connected hubs (it checked each one's role), lowest round trip first. */
function connectedHubs(attachments: HubAttachment[] | undefined, trustDomain: string): DirectoryHub[] {
  return (attachments ?? []).filter((hub) => hub.state === 'connected' && hub.hub)
    .sort((a, b) => (a.rttMs ?? Number.MAX_SAFE_INTEGER) - (b.rttMs ?? Number.MAX_SAFE_INTEGER))
    .map((hub) => ({address: hub.address, spiffe: identitySpiffe(trustDomain, hub.hub!)}))
}

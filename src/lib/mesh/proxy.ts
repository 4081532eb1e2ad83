// The proxy in the mesh's words (ZTM's zt-proxy): a listener on one agent (SOCKS5 + HTTP on one port) and
// exits on others, each with its targets (CIDRs, host names, `*.suffix`, `*`) and exclusions; the most
// specific exit serves a target, names are resolved at the exit, policies name the service `proxy`.
import type {ProxyExit, ProxyListener} from '../config/types.js'
import {ExitCode, ZtError} from '../errors.js'
import {hashPassword} from '../pki/password.js'
import {parseExitPattern} from '../proxy/state/exits.js'
import {type ControllerApi, type ResourceList, resourcePath} from './api.js'
import {parseListen, parseName, parseSubject} from './parse.js'
import {type ChangeOptions, type ChangeResult, commitChange, type RolloutTarget} from './rollout.js'
import {assertIdentityExists} from './tunnels.js'

/** Every agent routes proxy targets to the exits: a change of one must reach them all. */
const EVERY_AGENT = 'all' as const

export interface OpenProxyInput {
  agent: string
  listen: string
  users?: {name: string; password: string}[]
}

export interface ExitChange {
  addExclusions?: string[]
  addTargets?: string[]
  agent: string
  /** replace the allow list (undefined: keep it) */
  allow?: string[]
  /** start from no targets, exclusions or allow list */
  clear?: boolean
  removeExclusions?: string[]
  removeTargets?: string[]
}

export function parseExitTarget(text: string, what = 'target'): string {
  if (parseExitPattern(text)) return text.trim().toLowerCase()
  throw new ZtError('ZT_ERR_INVALID_TARGET', `"${text}" is not a proxy ${what}`, {
    exit: ExitCode.usage,
    suggestion: 'write a CIDR (10.0.0.0/8, fd00::/8), an address, a host name (db.internal), *.suffix (*.svc.cluster.local), or * for every name',
  })
}

export async function openProxy(api: ControllerApi, input: OpenProxyInput, options: ChangeOptions = {}): Promise<ChangeResult & {listener: ProxyListener}> {
  const users = await Promise.all((input.users ?? []).map(async (user) => {
    if (user.password === '') throw new ZtError('ZT_ERR_USAGE', `the password of proxy user "${user.name}" is empty`, {exit: ExitCode.usage, suggestion: 'give a non-empty password (--password-file)'})
    return {name: parseName(user.name, 'user name'), passwordHash: await hashPassword(user.password)}
  }))
  const listener: ProxyListener = {agent: parseName(input.agent, 'agent name'), listen: parseListen(input.listen), users}
  await assertIdentityExists(api, listener.agent)
  const target: RolloutTarget = {owners: [listener.agent], resource: {key: listener.agent, kind: 'proxy'}, watchers: []}
  return {...await commitChange(api, options, {body: listener, method: 'PUT', path: resourcePath('proxy', listener.agent)}, () => target), listener}
}

export async function closeProxy(api: ControllerApi, agent: string, options: ChangeOptions = {}): Promise<ChangeResult> {
  const name = parseName(agent, 'agent name')
  try {
    return await commitChange(api, options, {method: 'DELETE', path: resourcePath('proxy', name)}, () => ({owners: [name], watchers: []}))
  } catch (error) {
    if (ZtError.is(error) && error.code === 'ZT_ERR_NOT_FOUND') {
      throw new ZtError('ZT_ERR_NOT_FOUND', `agent ${agent} has no proxy listener`, {exit: ExitCode.notFound, suggestion: 'see them with `ztctl proxy list`'})
    }

    throw error
  }
}

/** Change AGENT's exit: add/remove targets and exclusions; an exit left with no target is removed. */
export async function configureExit(api: ControllerApi, change: ExitChange, options: ChangeOptions = {}): Promise<ChangeResult & {exit?: ProxyExit; removed: boolean}> {
  const agent = parseName(change.agent, 'agent name')
  const edits = {
    addExclusions: (change.addExclusions ?? []).map((text) => parseExitTarget(text, 'exclusion')),
    addTargets: (change.addTargets ?? []).map((text) => parseExitTarget(text)),
    allow: change.allow?.map((subject) => parseSubject(subject)),
    removeExclusions: (change.removeExclusions ?? []).map((text) => text.trim().toLowerCase()),
    removeTargets: (change.removeTargets ?? []).map((text) => text.trim().toLowerCase()),
  }
  await assertIdentityExists(api, agent)
  const {items} = await api.request<ResourceList<ProxyExit>>('GET', resourcePath('exit'))
  const current = change.clear ? undefined : items.find((item) => item.agent === agent)
  const missing = [...edits.removeTargets.filter((target) => !current?.targets.includes(target)), ...edits.removeExclusions.filter((target) => !current?.exclusions.includes(target))]
  if (missing.length > 0) {
    throw new ZtError('ZT_ERR_NOT_FOUND', `agent ${agent}'s exit has no ${missing.map((text) => JSON.stringify(text)).join(', ')}`, {exit: ExitCode.notFound, suggestion: 'see its targets with `ztctl proxy list`'})
  }

  const merge = (list: string[] = [], add: string[], remove: string[]): string[] => [...new Set([...list, ...add])].filter((item) => !remove.includes(item))
  const exit: ProxyExit = {
    agent,
    allow: edits.allow ?? current?.allow ?? [],
    exclusions: merge(current?.exclusions, edits.addExclusions, edits.removeExclusions),
    targets: merge(current?.targets, edits.addTargets, edits.removeTargets),
  }
  if (exit.targets.length === 0) {
    if (!current && !change.clear) {
      throw new ZtError('ZT_ERR_NO_TARGET', `agent ${agent} is no exit yet: give it a target`, {exit: ExitCode.usage, suggestion: 'add --add-target CIDR|HOST|*.SUFFIX'})
    }

    if (!current && !items.some((item) => item.agent === agent)) return {removed: true}
    return {...await commitChange(api, options, {method: 'DELETE', path: resourcePath('exit', agent)}, () => ({owners: [agent], watchers: EVERY_AGENT})), removed: true}
  }

  const target: RolloutTarget = {owners: [agent], resource: {key: agent, kind: 'exit'}, watchers: EVERY_AGENT}
  return {...await commitChange(api, options, {body: exit, method: 'PUT', path: resourcePath('exit', agent)}, () => target), exit, removed: false}
}

export async function listProxies(api: ControllerApi): Promise<{exits: ProxyExit[]; listeners: ProxyListener[]; version: number}> {
  const [listeners, exits] = await Promise.all([
    api.request<ResourceList<ProxyListener>>('GET', resourcePath('proxy')),
    api.request<ResourceList<ProxyExit>>('GET', resourcePath('exit')),
  ])
  return {
    exits: exits.items.sort((a, b) => a.agent.localeCompare(b.agent)),
    listeners: listeners.items.sort((a, b) => a.agent.localeCompare(b.agent)),
    version: Math.max(listeners.version, exits.version),
  }
}

// Success means applied: after a change is stored as version V, wait until every affected agent has
// acknowledged V (or later) and, for the resource the change was about, reported it applied — as
// `kubectl rollout status` waits for pods. An agent that could not apply it fails the command with the
// agent's own reason; one that is offline or silent past the timeout fails it too, saying so.
import {setTimeout as sleep} from 'node:timers/promises'

import type {ResourceKind, ResourceStatus} from '../config/types.js'
import {ExitCode, ZtError} from '../errors.js'
import type {AgentList, AgentStatus, ControllerApi} from './api.js'

export interface RolloutTarget {
  /** agents that must report the resource applied (the tunnel's own agent) */
  owners: string[]
  /** agents that must acknowledge the version, when connected (agents routing to the service; every agent for a policy) */
  watchers: string[] | 'all'
  /** the resource the change was about; absent for a deletion (acknowledging the version is enough) */
  resource?: {key: string; kind: ResourceKind}
}

export interface AgentRollout {
  agent: string
  reason?: string
  state: 'applied' | 'error' | 'offline' | 'pending'
}

export interface Rollout {
  agents: AgentRollout[]
  /** the version that was waited for */
  version: number
}

const POLL_MS = 100

function agentState(agent: AgentStatus | undefined, version: number, resource: RolloutTarget['resource'], owner: boolean): AgentRollout['state'] | ResourceStatus {
  if (!agent?.online) return 'offline'
  if ((agent.ackedVersion ?? -1) < version) return 'pending'
  const status = resource && agent.resources?.find((item) => item.kind === resource.kind && item.key === resource.key)
  if (status?.state === 'error') return status
  // The owner lists its own tunnels; one it does not list was not applied (it may not know it is the owner).
  if (owner && resource && !status && (resource.kind === 'inbound' || resource.kind === 'outbound')) return 'pending'
  return 'applied'
}

/** Wait for TARGET to be applied at VERSION, or throw the first failure, naming agent and reason. */
export async function waitForRollout(api: ControllerApi, version: number, target: RolloutTarget, timeoutMs: number): Promise<Rollout> {
  const deadline = Date.now() + timeoutMs
  for (let first = true; ; first = false) {
    const list = await api.request<AgentList>('GET', '/v1/agents')
    const byName = new Map(list.agents.map((agent) => [agent.name, agent]))
    const watchers = target.watchers === 'all' ? list.agents.filter((agent) => agent.online).map((agent) => agent.name) : target.watchers
    const names = [...new Set([...target.owners, ...watchers])].sort()
    const agents: AgentRollout[] = []
    for (const name of names) {
      const owner = target.owners.includes(name)
      const state = agentState(byName.get(name), version, target.resource, owner)
      if (typeof state === 'object') throw notApplied(name, version, state)
      // A watcher that is not connected gets the version when it connects; an owner must apply it now.
      if (state === 'offline' && owner) throw offline(name, version, first)
      if (state !== 'offline' || owner) agents.push({agent: name, state})
    }

    const waiting = agents.filter((agent) => agent.state === 'pending')
    if (waiting.length === 0) return {agents, version}
    if (Date.now() >= deadline) throw timedOut(waiting.map((agent) => agent.agent), byName, version, timeoutMs)
    await sleep(POLL_MS)
  }
}

function notApplied(agent: string, version: number, status: ResourceStatus): ZtError {
  const what = `${status.kind} ${status.key}`
  const taken = status.code === 'EADDRINUSE'
  return new ZtError('ZT_ERR_NOT_APPLIED', `agent ${agent} could not apply ${what}: ${status.reason ?? 'no reason given'}`, {
    details: {agent, code: status.code, key: status.key, kind: status.kind, version},
    exit: taken ? ExitCode.conflict : ExitCode.failure,
    suggestion: taken
      ? `free that port on ${agent}'s host or pick another --listen; the change is stored as version ${version} and ${agent} keeps its other tunnels (\`ztctl proxy-status\`, \`ztctl tunnel list\`)`
      : `fix the cause and apply again; the change is stored as version ${version} (\`ztctl proxy-status\` shows the reason)`,
  })
}

function offline(agent: string, version: number, beforeWaiting: boolean): ZtError {
  return new ZtError('ZT_ERR_AGENT_OFFLINE', `agent ${agent} is not connected to the controller${beforeWaiting ? '' : ' any more'}, so nothing has applied version ${version} yet`, {
    details: {agent, version},
    exit: ExitCode.unreachable,
    suggestion: `start it (\`ztctl agent run -i ${agent}.json\`): the change is stored and it applies it when it connects; pass --no-wait to skip waiting`,
  })
}

function timedOut(waiting: string[], byName: Map<string, AgentStatus>, version: number, timeoutMs: number): ZtError {
  const acked = waiting.map((name) => `${name} (at version ${byName.get(name)?.ackedVersion ?? 'none'})`).join(', ')
  return new ZtError('ZT_ERR_ROLLOUT_TIMEOUT', `not applied within ${timeoutMs / 1000} s: ${acked} had not applied version ${version}`, {
    details: {version, waiting},
    suggestion: 'see `ztctl proxy-status` and the agent\'s log (`ztctl logs AGENT`); a longer --timeout waits more',
  })
}

export interface ChangeOptions {
  /** check the input and return the request that would be sent; send nothing */
  dryRun?: boolean
  /** wait this long for the agents (undefined: return once stored) */
  waitMs?: number
}

export interface ChangeResult {
  /** with --dry-run: the request that was not sent */
  dryRun?: {body?: unknown; method: 'DELETE' | 'PUT'; path: string}
  /** with --wait: each affected agent's state */
  rollout?: Rollout
  /** the stored version (absent with --dry-run) */
  version?: number
}

/** Send one change (or, dry, describe it), then wait for TARGET at the version it got. */
export async function commitChange(
  api: ControllerApi, options: ChangeOptions, request: {body?: unknown; method: 'DELETE' | 'PUT'; path: string}, target: () => Promise<RolloutTarget> | RolloutTarget,
): Promise<ChangeResult> {
  if (options.dryRun) return {dryRun: request}
  const {version} = await api.request<{version: number}>(request.method, request.path, request.body)
  if (options.waitMs === undefined) return {version}
  return {rollout: await waitForRollout(api, version, await target(), options.waitMs), version}
}

/** "applied by agent-a, agent-b" / "stored (not waited for)" / "dry run: nothing changed", for a command's last line. */
export function describeOutcome(result: ChangeResult): string {
  if (result.dryRun) return 'dry run: nothing was changed'
  const applied = result.rollout?.agents.filter((agent) => agent.state === 'applied').map((agent) => agent.agent) ?? []
  if (!result.rollout) return `stored as version ${result.version}; not waiting for the agents`
  return applied.length === 0 ? `version ${result.version}; no agent is connected that needs it` : `version ${result.version}, applied by ${applied.join(', ')}`
}

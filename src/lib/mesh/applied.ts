// "Success only once the affected agents applied it": wait until every online agent has acknowledged a
// configuration version, bounded in time. Agents that are offline apply it when they reconnect.
import {setTimeout as sleep} from 'node:timers/promises'

import type {AgentList, ControllerApi} from './api.js'

export interface Applied {
  /** online agents that acknowledged VERSION */
  applied: string[]
  /** online agents that had not when the wait ran out */
  pending: string[]
}

export async function waitForApplied(api: ControllerApi, version: number, timeoutMs = 10_000, pollMs = 100): Promise<Applied> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const {agents} = await api.request<AgentList>('GET', '/v1/agents')
    const online = agents.filter((agent) => agent.online)
    const applied = online.filter((agent) => (agent.ackedVersion ?? 0) >= version).map((agent) => agent.name).sort()
    const pending = online.filter((agent) => (agent.ackedVersion ?? 0) < version).map((agent) => agent.name).sort()
    if (pending.length === 0 || Date.now() >= deadline) return {applied, pending}
    await sleep(pollMs)
  }
}

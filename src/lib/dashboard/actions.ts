// What the page may ask for: create and delete policies, revoke identities (each answered once the online
// agents applied it), and explain a decision. The same lib functions as the CLI commands, so the same
// validation and the same words in errors.
import {ExitCode, ZtError} from '../errors.js'
import type {ControllerApi} from '../mesh/api.js'
import {explainPolicy, type Explanation} from '../mesh/explain.js'
import {parseName} from '../mesh/parse.js'
import {createPolicy, deletePolicy} from '../mesh/policies.js'
import {type ChangeResult as Change, waitForRollout} from '../mesh/rollout.js'
import type {ChangeResult} from './model.js'

const MAX_LIST = 64

const badRequest = (message: string): ZtError => new ZtError('ZT_ERR_BAD_REQUEST', message, {exit: ExitCode.usage})

function asObject(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('the request body is not a JSON object')
  return body as Record<string, unknown>
}

function text(body: Record<string, unknown>, field: string, optional = false): string | undefined {
  const value = body[field]
  if (value === undefined && optional) return undefined
  if (typeof value !== 'string' || value.length > 1024) throw badRequest(`"${field}" must be a string`)
  return value
}

/** A list of strings; numbers (ports) are taken as their text, empty entries are dropped. */
function list(body: Record<string, unknown>, field: string): string[] {
  const value = body[field] ?? []
  if (!Array.isArray(value) || value.length > MAX_LIST) throw badRequest(`"${field}" must be a list of at most ${MAX_LIST} values`)
  return value.map((item) => {
    if ((typeof item !== 'string' && typeof item !== 'number') || String(item).length > 1024) throw badRequest(`"${field}" must hold strings`)
    return String(item).trim()
  }).filter((item) => item !== '')
}

/** How long a change may take to reach the online agents before the page is told it did not. */
const APPLY_TIMEOUT_MS = 10_000

/** The page's view of a change the CLI's rollout wait saw applied (it throws, naming the agent, otherwise). */
function applied(change: Change, message: string): ChangeResult {
  const agents = change.rollout?.agents ?? []
  const names = (pending: boolean) => agents.filter((agent) => (agent.state !== 'applied') === pending).map((agent) => agent.agent)
  return {applied: names(false), message, pending: names(true), version: change.version ?? 0}
}

export async function createPolicyAction(api: ControllerApi, body: unknown): Promise<ChangeResult> {
  const input = asObject(body)
  const change = await createPolicy(api, {
    action: text(input, 'action')!, from: list(input, 'from'), name: text(input, 'name')!,
    ports: list(input, 'ports'), services: list(input, 'services'), sourceCidrs: list(input, 'sourceCidrs'),
  }, input.replace === true, {waitMs: APPLY_TIMEOUT_MS})
  return applied(change, `policy ${change.policy.name} (${change.policy.action}) created`)
}

export async function deletePolicyAction(api: ControllerApi, body: unknown): Promise<ChangeResult> {
  const name = text(asObject(body), 'name')!
  return applied(await deletePolicy(api, name, {waitMs: APPLY_TIMEOUT_MS}), `policy ${name} deleted`)
}

export async function revokeIdentityAction(api: ControllerApi, body: unknown, self: string): Promise<ChangeResult> {
  const name = parseName(text(asObject(body), 'name')!, 'identity name')
  if (name === self) {
    throw new ZtError('ZT_ERR_BAD_REQUEST', `the dashboard acts as "${self}": revoking it would cut the dashboard off`, {
      exit: ExitCode.usage,
      suggestion: `revoke it from another admin identity with \`ztctl identity delete ${self}\``,
    })
  }

  const {version} = await api.request<{version: number}>('DELETE', `/v1/identities/${encodeURIComponent(name)}`)
  const rollout = await waitForRollout(api, version, {owners: [], watchers: 'all'}, APPLY_TIMEOUT_MS)
  return applied({rollout, version}, `identity ${name} revoked: its certificates are refused and its connections closed`)
}

export async function explainAction(api: ControllerApi, body: unknown): Promise<Explanation> {
  const input = asObject(body)
  const sourceIp = text(input, 'sourceIp', true)?.trim()
  return explainPolicy(api, {from: text(input, 'from')!.trim(), sourceIp: sourceIp || undefined, to: text(input, 'to')!.trim()})
}

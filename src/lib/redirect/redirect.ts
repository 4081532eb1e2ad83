// `ztctl redirect add|remove|list`: put a network namespace's TCP traffic through the node agent
// (rules + policy routing in the namespace, a record in the state cache, an add message to the agent),
// and take it out again restoring exactly the state from before.
import {isIP} from 'node:net'

import {ExitCode, ZtError} from '../errors.js'
import {DEFAULT_INPOD_SOCKET, type InpodAdd} from '../inpod/protocol.js'
import {type AgentNotice, notifyAgent} from './agent-client.js'
import {type Backend, type BackendRequest, chooseBackend, iptablesToolName, recordedBackend, variantOf} from './backend.js'
import {applyFirewall, type FirewallRemoval, removeFirewall, snapshotFirewall} from './firewall.js'
import {ensureRouting, readRouting, removeRouting, routeArgs, ruleArgs} from './routing.js'
import {type Family, renderNftScript, renderRuleSet} from './rules.js'
import {
  DEFAULT_INPOD_STATE_DIR, deleteRecord, listRecords, parseWorkloadRef, readRecord, type RedirectRecord, validateServiceAccount,
  workloadUid, writeRecord,
} from './state.js'
import {familiesOf, type NetnsTarget, netnsIdentity, readNetnsAddresses, resolveNetnsPath} from './target.js'

export {DEFAULT_INPOD_SOCKET, DEFAULT_INPOD_STATE_DIR}

export interface RedirectAddOptions extends NetnsTarget {
  workload: string
  serviceAccount: string
  ips?: string[]
  dnsCapture?: boolean
  agentSocket?: string
  stateDir?: string
  backend?: BackendRequest
  agentTimeoutMs?: number
}

export interface RedirectAddResult {
  uid: string
  workload: {namespace: string; name: string; serviceAccount: string}
  netns: string
  ips: string[]
  backend: Backend
  dnsCapture: boolean
  /** false when everything was already in place */
  changed: boolean
  agent: AgentNotice
  warnings: string[]
}

/** Everything add checks and reads before changing anything (shared with the dry run). */
async function prepareAdd(options: RedirectAddOptions) {
  const stateDir = options.stateDir ?? DEFAULT_INPOD_STATE_DIR
  const netns = await resolveNetnsPath(options)
  const {name, namespace} = parseWorkloadRef(options.workload)
  const serviceAccount = validateServiceAccount(options.serviceAccount)
  const uid = workloadUid(namespace, name)
  const netnsId = await netnsIdentity(netns)
  // On by default (as Istio since 1.25): the node agent answers the captured DNS on 15053.
  const dnsCapture = options.dnsCapture ?? true

  const existing = await readRecord(stateDir, uid)
  for (const record of await listRecords(stateDir)) {
    if (record.add.uid !== uid && record.netnsId === netnsId && (await stillSameNetns(record))) {
      throw new ZtError('ZT_ERR_CONFLICT', `${netns} is already redirected as workload ${record.add.workload.namespace}/${record.add.workload.name}`, {
        exit: ExitCode.conflict, suggestion: `remove it first: ztctl redirect remove --workload ${record.add.workload.namespace}/${record.add.workload.name}`,
      })
    }
  }

  if (existing && existing.netnsId !== netnsId && (await stillSameNetns(existing))) {
    throw new ZtError('ZT_ERR_CONFLICT', `workload ${namespace}/${name} is already redirected in another namespace (${existing.add.netns})`, {
      exit: ExitCode.conflict, suggestion: `remove it first: ztctl redirect remove --workload ${namespace}/${name}`,
    })
  }

  const ips = options.ips?.length ? validateIps(options.ips) : await readNetnsAddresses(netns)
  if (ips.length === 0) {
    throw new ZtError('ZT_ERR_NO_ADDRESS', `${netns} has no global address`, {suggestion: 'give the pod an address first, or pass --ip IP'})
  }

  const families = familiesOf(ips)
  const backend = await addBackend(netns, families, options.backend, existing?.netnsId === netnsId ? existing : undefined)
  return {backend, dnsCapture, existing, families, ips, name, namespace, netns, netnsId, serviceAccount, stateDir, uid}
}

export interface RedirectPlan {
  backend: Backend
  dnsCapture: boolean
  ips: string[]
  netns: string
  /** the ip rule / ip route commands it runs (those already in place are skipped) */
  routing: string[]
  /** the input it feeds each firewall tool */
  rules: {text: string; tool: string}[]
  workload: {name: string; namespace: string; serviceAccount: string}
}

/** `redirect add --dry-run`: the same checks, and the rules and routes it would install; nothing changes. */
export async function planRedirect(options: RedirectAddOptions): Promise<RedirectPlan> {
  const {backend, dnsCapture, families, ips, name, namespace, netns, serviceAccount} = await prepareAdd(options)
  const rules = backend === 'nft'
    ? [{text: renderNftScript({dnsCapture}), tool: 'nft -f -'}]
    : families.map((family) => ({text: renderRuleSet(family, {dnsCapture}), tool: `${iptablesToolName(variantOf(backend), family, 'restore')} --noflush`}))
  const routing = families.flatMap((family) => [['ip', ...ruleArgs(family)].join(' '), ['ip', ...routeArgs(family)].join(' ')])
  return {backend, dnsCapture, ips, netns, routing, rules, workload: {name, namespace, serviceAccount}}
}

export async function addRedirect(options: RedirectAddOptions): Promise<RedirectAddResult> {
  const {backend, dnsCapture, existing, families, ips, name, namespace, netns, netnsId, serviceAccount, stateDir, uid} = await prepareAdd(options)
  const add: InpodAdd = {ips, netns, type: 'add', uid, workload: {name, namespace, serviceAccount}}
  // The record (with the pre-add state) is written before any change, so an interrupted add can
  // still be removed exactly. A repeated add keeps the original pre-add state.
  const before = existing?.netnsId === netnsId ? existing.before : {firewall: await snapshotFirewall(netns, backend, families), routing: await readRoutingAll(netns, families)}
  const record: RedirectRecord = {add, backend, before, createdAt: existing?.createdAt ?? new Date().toISOString(), dnsCapture, families, netnsId}
  await writeRecord(stateDir, record)

  const {changed: firewallChanged} = await applyFirewall(netns, backend, families, {dnsCapture})
  let routingChanged = false
  for (const family of families) {
    const was = await ensureRouting(netns, family)
    routingChanged ||= !was.rule || !was.route
  }

  const warnings: string[] = []
  const agent = await notifyAgent(options.agentSocket ?? DEFAULT_INPOD_SOCKET, add, {timeoutMs: options.agentTimeoutMs})
  if (agent.ack?.error) {
    throw new ZtError('ZT_ERR_AGENT_REJECTED', `rules are installed and cached, but the agent refused workload ${namespace}/${name}: ${agent.ack.error}`, {
      details: {uid}, suggestion: 'fix what the agent reports, then run the same `ztctl redirect add` again (it is idempotent)',
    })
  }

  if (agent.problem && agent.problem.code !== 'ZT_ERR_AGENT_UNREACHABLE') {
    throw new ZtError(agent.problem.code, `rules are installed and cached, but telling the agent failed: ${agent.problem.message}`, {
      details: {uid}, suggestion: 'restart the agent (it loads the cache on start) or run the same `ztctl redirect add` again',
    })
  }

  if (!agent.reachable) warnings.push(`${agent.problem?.message ?? 'the agent is not reachable'}; it will pick the workload up from ${stateDir} when it starts`)
  return {agent, backend, changed: firewallChanged || routingChanged, dnsCapture, ips, netns, uid, warnings, workload: add.workload}
}

export interface RedirectRemoveOptions extends Partial<NetnsTarget> {
  workload?: string
  agentSocket?: string
  stateDir?: string
  agentTimeoutMs?: number
}

export interface RedirectRemoveResult {
  uid: string
  netns: string
  backend: Backend
  /** true when the namespace's firewall does what it did before `add`: the same rules, policies and non-empty chains */
  restored: boolean
  differences: string[]
  /** empty tables that stay because this back end cannot delete them (they change nothing), in words */
  kept: string[]
  agent: AgentNotice
  warnings: string[]
}

export async function removeRedirect(options: RedirectRemoveOptions): Promise<RedirectRemoveResult> {
  const stateDir = options.stateDir ?? DEFAULT_INPOD_STATE_DIR
  const record = await findRecord(options, stateDir)
  const {add} = record
  const warnings: string[] = []
  const backend = await recordedBackend(record.backend)
  let firewall: FirewallRemoval = {differences: [], kept: []}
  if (await stillSameNetns(record)) {
    firewall = await removeFirewall(add.netns, backend, record.families, record.before.firewall)
    for (const family of record.families) await removeRouting(add.netns, family, record.before.routing[`${family}`] ?? {route: false, rule: false})
  } else {
    warnings.push(`${add.netns} no longer exists (the pod is gone): nothing to undo in it`)
  }

  const agent = await notifyAgent(options.agentSocket ?? DEFAULT_INPOD_SOCKET, {type: 'delete', uid: add.uid}, {timeoutMs: options.agentTimeoutMs})
  if (!agent.reachable) warnings.push(`${agent.problem?.message ?? 'the agent is not reachable'}; it drops the workload when it next loads ${stateDir}`)
  else if (agent.problem) warnings.push(`telling the agent failed: ${agent.problem.message}`)
  else if (agent.ack?.error) warnings.push(`the agent reported: ${agent.ack.error}`)
  await deleteRecord(stateDir, add.uid)
  const {differences, kept} = firewall
  if (differences.length > 0) {
    throw new ZtError('ZT_ERR_RESTORE_MISMATCH', `our rules are removed from ${add.netns}, but its firewall differs from before \`redirect add\` (${backend}):\n  ${differences.join('\n  ')}`, {
      details: {backend, differences, uid: add.uid},
      suggestion: `these were changed in the namespace while it was redirected (not by ztctl): keep them, or undo each one ${undoHint(backend)}; \`ztctl diag iptables --netns ${add.netns}\` shows the firewall`,
    })
  }

  return {agent, backend, differences, kept, netns: add.netns, restored: true, uid: add.uid, warnings}
}

export interface RedirectListRow {
  uid: string
  namespace: string
  name: string
  serviceAccount: string
  netns: string
  ips: string[]
  backend: Backend | 'iptables'
  dnsCapture: boolean
  createdAt: string
  /** the namespace file still exists and is the one redirected */
  present: boolean
}

export async function listRedirects(options: {stateDir?: string} = {}): Promise<RedirectListRow[]> {
  const records = await listRecords(options.stateDir ?? DEFAULT_INPOD_STATE_DIR)
  return Promise.all(records.map(async (record) => ({
    backend: record.backend, createdAt: record.createdAt, dnsCapture: record.dnsCapture, ips: record.add.ips, name: record.add.workload.name,
    namespace: record.add.workload.namespace, netns: record.add.netns, present: await stillSameNetns(record), serviceAccount: record.add.workload.serviceAccount, uid: record.add.uid,
  })))
}

/** The cache record for --workload NS/NAME, or for the namespace of --netns/--pid. */
export async function findRecord(options: Partial<NetnsTarget> & {workload?: string}, stateDir: string): Promise<RedirectRecord> {
  if (options.workload !== undefined) {
    const {name, namespace} = parseWorkloadRef(options.workload)
    const record = await readRecord(stateDir, workloadUid(namespace, name))
    if (!record) throw notRedirected(`workload ${options.workload}`, stateDir)
    return record
  }

  const netns = await resolveNetnsPath({netns: options.netns, pid: options.pid})
  const netnsId = await netnsIdentity(netns)
  for (const record of await listRecords(stateDir)) if (record.netnsId === netnsId && (await stillSameNetns(record))) return record
  throw notRedirected(netns, stateDir)
}

function notRedirected(what: string, stateDir: string): ZtError {
  return new ZtError('ZT_ERR_NOT_FOUND', `${what} is not redirected (no record in ${stateDir})`, {
    exit: ExitCode.notFound, suggestion: 'see `ztctl redirect list` (pass the same --state-dir as for `redirect add`)',
  })
}

async function stillSameNetns(record: RedirectRecord): Promise<boolean> {
  try {
    return (await netnsIdentity(record.add.netns)) === record.netnsId
  } catch {
    return false
  }
}

function undoHint(backend: Backend): string {
  return backend === 'nft'
    ? 'with `nft delete rule … handle N` (`nft -a list ruleset` shows the handles)'
    : `with ${backend} (a "new since add" line is the command that made it: run it with -D instead of -A)`
}

/** The back end of an add: the one asked for, else a repeated add's, else the namespace's own (backend.ts). */
async function addBackend(netns: string, families: readonly Family[], requested: BackendRequest | undefined, existing: RedirectRecord | undefined): Promise<Backend> {
  const previous = existing ? await recordedBackend(existing.backend) : undefined
  const backend = requested || !previous ? await chooseBackend(netns, families, requested) : previous
  if (previous && backend !== previous) {
    const workload = `${existing!.add.workload.namespace}/${existing!.add.workload.name}`
    throw new ZtError('ZT_ERR_CONFLICT', `${netns} is redirected with ${previous}; rules of a second back end (${backend}) would run beside them`, {
      exit: ExitCode.conflict, suggestion: `remove it first (ztctl redirect remove --workload ${workload}), then add it with --backend ${backend}`,
    })
  }

  return backend
}

async function readRoutingAll(netns: string, families: readonly Family[]): Promise<RedirectRecord['before']['routing']> {
  const routing: RedirectRecord['before']['routing'] = {}
  for (const family of families) routing[`${family}`] = await readRouting(netns, family)
  return routing
}

function validateIps(ips: string[]): string[] {
  for (const ip of ips) {
    if (isIP(ip) === 0) throw new ZtError('ZT_ERR_USAGE', `--ip ${JSON.stringify(ip)} is not an IP address`, {exit: ExitCode.usage})
  }

  return ips
}

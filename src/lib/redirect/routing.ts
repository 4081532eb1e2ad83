// The policy routing half of the redirect: `ip rule fwmark 0x111/0xfff pref 32764 lookup 100` and
// `local 0.0.0.0/0 dev lo table 100` (::/0 for IPv6), so packets of the agent's connections (connmark
// 0x111 restored onto the packet) are delivered locally to the agent's listeners.
import {runTool, toolOutput} from '../exec/tools.js'
import {CONN_MARK, type Family, MARK_MASK, ROUTE_TABLE, RULE_PREF} from './rules.js'

export interface RoutingState {
  rule: boolean
  route: boolean
}

const familyFlag = (family: Family): string => (family === 6 ? '-6' : '-4')
const defaultDst = (family: Family): string => (family === 6 ? '::/0' : '0.0.0.0/0')

export const ruleArgs = (family: Family): string[] => [familyFlag(family), 'rule', 'add', 'fwmark', `${CONN_MARK}/${MARK_MASK}`, 'pref', String(RULE_PREF), 'lookup', String(ROUTE_TABLE)]
export const routeArgs = (family: Family): string[] => [familyFlag(family), 'route', 'add', 'local', defaultDst(family), 'dev', 'lo', 'table', String(ROUTE_TABLE)]

/** Whether our ip rule and table-100 route are present in the namespace. */
export async function readRouting(netns: string, family: Family): Promise<RoutingState> {
  const rules = JSON.parse(await toolOutput('ip', ['-j', familyFlag(family), 'rule', 'list'], {netns})) as {fwmark?: string; fwmask?: string; priority?: number; table?: string}[]
  // A table that never had a route does not exist yet: `ip` then fails with "FIB table does not exist".
  const listed = await runTool('ip', ['-j', familyFlag(family), 'route', 'show', 'table', String(ROUTE_TABLE)], {allowFailure: true, netns})
  if (listed.exitCode !== 0 && !/table does not exist/i.test(listed.stderr)) await toolOutput('ip', ['-j', familyFlag(family), 'route', 'show', 'table', String(ROUTE_TABLE)], {netns})
  const routes = (listed.exitCode === 0 ? JSON.parse(listed.stdout || '[]') : []) as {dev?: string; dst?: string; type?: string}[]
  return {
    route: routes.some((route) => route.type === 'local' && route.dst === 'default' && route.dev === 'lo'),
    rule: rules.some((rule) => rule.priority === RULE_PREF && rule.fwmark === CONN_MARK && rule.fwmask === MARK_MASK && rule.table === String(ROUTE_TABLE)),
  }
}

/** Add what is missing; returns what was there before (so removal takes away only what we added). */
export async function ensureRouting(netns: string, family: Family): Promise<RoutingState> {
  const before = await readRouting(netns, family)
  if (!before.rule) await toolOutput('ip', ruleArgs(family), {netns})
  if (!before.route) await toolOutput('ip', routeArgs(family), {netns})
  return before
}

/** Remove our rule/route unless they pre-existed our add. */
export async function removeRouting(netns: string, family: Family, preexisting: RoutingState): Promise<void> {
  const now = await readRouting(netns, family)
  if (now.rule && !preexisting.rule) await toolOutput('ip', ruleArgs(family).map((arg) => (arg === 'add' ? 'del' : arg)), {netns})
  if (now.route && !preexisting.route) await toolOutput('ip', routeArgs(family).map((arg) => (arg === 'add' ? 'del' : arg)), {netns})
}

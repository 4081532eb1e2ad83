// Raw views of a network namespace for `ztctl diag iptables|listeners|routes`: what `ss -ntlp`,
// each iptables variant's `iptables-save`, `nft list ruleset` and `ip rule`/`ip route` show inside it, entered with nsenter.
import {hasTool, runTool, toolOutput} from '../exec/tools.js'
import {type IptablesVariant, IPTABLES_VARIANTS, iptablesTool} from '../redirect/backend.js'
import type {Family} from '../redirect/rules.js'
import {type NetnsTarget, resolveNetnsPath} from '../redirect/target.js'

export interface Listener {
  protocol: 'tcp' | 'udp'
  address: string
  port: number
  process?: string
}

/** Parse `ss -Hn{t,u}lp` lines: STATE RECV-Q SEND-Q LOCAL PEER [PROCESS]. Unparseable lines are skipped. */
export function parseSs(text: string, protocol: 'tcp' | 'udp'): Listener[] {
  const listeners: Listener[] = []
  for (const line of text.split('\n')) {
    const columns = line.trim().split(/\s+/)
    if (columns.length < 5) continue
    const local = columns[3]!
    const colon = local.lastIndexOf(':')
    const port = Number(local.slice(colon + 1))
    if (colon <= 0 || !Number.isInteger(port)) continue
    const process = /users:\(\("([^"]+)",pid=(\d+)/.exec(columns.slice(5).join(' '))
    listeners.push({address: local.slice(0, colon), port, protocol, ...(process ? {process: `${process[1]}/${process[2]}`} : {})})
  }

  return listeners
}

export async function readListeners(netns: string): Promise<Listener[]> {
  const tcp = await toolOutput('ss', ['-Hntlp'], {netns})
  const udp = await toolOutput('ss', ['-Hnulp'], {netns})
  return [...parseSs(tcp, 'tcp'), ...parseSs(udp, 'udp')]
}

export async function listenersView(target: NetnsTarget): Promise<{netns: string; listeners: Listener[]}> {
  const netns = await resolveNetnsPath(target)
  return {listeners: await readListeners(netns), netns}
}

export interface IptablesView {
  netns: string
  /** `iptables-save`/`ip6tables-save` of each iptables variant with tables in the namespace (legacy and nft rules can sit side by side) */
  iptables: {tool: string; variant: IptablesVariant; family: Family; text: string}[]
  /** `nft list ruleset`, when nft is installed and the namespace has nft tables */
  nft?: string
}

export async function iptablesView(target: NetnsTarget): Promise<IptablesView> {
  const netns = await resolveNetnsPath(target)
  const view: IptablesView = {iptables: [], netns}
  const installed: IptablesVariant[] = []
  for (const variant of IPTABLES_VARIANTS) {
    for (const family of [4, 6] as const) {
      const tool = await iptablesTool(variant, family, 'save').catch(() => undefined)
      if (!tool) continue
      if (!installed.includes(variant)) installed.push(variant)
      const text = await toolOutput(tool, [], {netns})
      if (/^\*/m.test(text)) view.iptables.push({family, text, tool, variant})
    }
  }

  if (await hasTool('nft')) {
    const ruleset = await runTool('nft', ['list', 'ruleset'], {allowFailure: true, netns})
    if (ruleset.exitCode === 0 && ruleset.stdout.trim() !== '') view.nft = ruleset.stdout
  }

  if (installed.length === 0 && !(await hasTool('nft'))) await toolOutput('iptables-save', [], {netns}) // the missing-tool error
  return view
}

export interface RoutesView {
  netns: string
  rules4: string
  rules6: string
  routes4: string
  routes6: string
}

/** `ip rule` and `ip route show table all` for both families. */
export async function routesView(target: NetnsTarget): Promise<RoutesView> {
  const netns = await resolveNetnsPath(target)
  const ip = (args: string[]): Promise<string> => toolOutput('ip', args, {netns})
  return {
    netns,
    routes4: await ip(['-4', 'route', 'show', 'table', 'all']),
    routes6: await ip(['-6', 'route', 'show', 'table', 'all']),
    rules4: await ip(['-4', 'rule', 'list']),
    rules6: await ip(['-6', 'rule', 'list']),
  }
}

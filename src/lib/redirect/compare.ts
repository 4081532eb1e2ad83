// What a namespace's firewall does, as opposed to how a tool prints it. `redirect remove` compares the state
// from before `add` with the state after removal in this form: an empty table that `add` brought into being
// (iptables-legacy cannot delete tables; iptables-nft needs the `nft` binary to) is no difference, while a
// rule, a policy or a non-empty user chain that someone changed is.
import {parseIptablesSave, type SavedTable} from './rules.js'

/** Firewall state as the tools print it (comments and counters aside): `iptables4`/`iptables6` or `nft`. */
export type FirewallSnapshot = Partial<Record<'iptables4' | 'iptables6' | 'nft', string>>

/**
 * A firewall as ordered lines per chain, each line the command that makes it (`-t nat -A OUTPUT -j ACCEPT`,
 * `-t filter -P INPUT DROP`). Built-in chains with policy ACCEPT and no rules, empty user chains and tables
 * with nothing else are absent: they change no packet's fate.
 */
export type FirewallModel = Map<string, string[]>

export function iptablesModel(saveText: string): FirewallModel {
  const model: FirewallModel = new Map()
  for (const [table, saved] of parseIptablesSave(saveText)) {
    for (const [chain, policy] of saved.policies) {
      if (policy !== '-' && policy !== 'ACCEPT') model.set(`-t ${table} -P ${chain}`, [`-t ${table} -P ${chain} ${policy}`])
    }

    for (const [chain, rules] of saved.rules) {
      if (rules.length > 0) model.set(`-t ${table} -A ${chain}`, rules.map((rule) => `-t ${table} -A ${chain} ${rule}`))
    }
  }

  return model
}

const ACCEPTING_BASE_CHAIN = /^type .* hook .*policy accept;$/

/**
 * The same for `nft list ruleset`: every statement under the path of its blocks (`table inet x chain y`).
 * A base chain's `type … hook … policy accept;` line is no statement (a `policy drop` one is), so tables and
 * chains with nothing else are absent.
 */
export function nftModel(ruleset: string): FirewallModel {
  const model: FirewallModel = new Map()
  const blocks: string[] = []
  for (const raw of ruleset.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || ACCEPTING_BASE_CHAIN.test(line)) continue
    if (line.endsWith('{')) {
      blocks.push(line.slice(0, -1).trim())
    } else if (line === '}') {
      blocks.pop()
    } else {
      const key = blocks.join(' ')
      model.set(key, [...(model.get(key) ?? []), `${key}: ${line}`])
    }
  }

  return model
}

/** A table with nothing in it but built-in chains with policy ACCEPT and no rules. */
export function isEmptyTable(saved: SavedTable): boolean {
  return [...saved.policies.values()].every((policy) => policy === 'ACCEPT') && [...saved.rules.values()].every((rules) => rules.length === 0)
}

/** The differences in words: `LABEL: new since add: LINE`, `… gone since add: LINE`, or a changed order. */
export function diffModels(label: string, before: FirewallModel, after: FirewallModel): string[] {
  const differences: string[] = []
  for (const key of new Set([...before.keys(), ...after.keys()])) {
    const was = before.get(key) ?? []
    const is = after.get(key) ?? []
    if (was.length === is.length && was.every((line, index) => line === is[index])) continue
    const gone = withoutEach(was, is)
    const added = withoutEach(is, was)
    for (const line of gone) differences.push(`${label}: gone since add: ${line}`)
    for (const line of added) differences.push(`${label}: new since add: ${line}`)
    if (gone.length + added.length === 0) differences.push(`${label}: ${key}: the same rules as before add, in another order`)
  }

  return differences
}

/** FROM without one occurrence of each line of TAKE (multiset difference, FROM's order kept). */
function withoutEach(from: readonly string[], take: readonly string[]): string[] {
  const left = [...take]
  return from.filter((line) => {
    const index = left.indexOf(line)
    if (index === -1) return true
    left.splice(index, 1)
    return false
  })
}

/** Semantic differences between two snapshots; `iptablesLabel` names the variant (e.g. `iptables-nft`). */
export function diffSnapshots(iptablesLabel: string, before: FirewallSnapshot, after: FirewallSnapshot): string[] {
  const views = [['iptables4', `${iptablesLabel} IPv4`, iptablesModel], ['iptables6', `${iptablesLabel} IPv6`, iptablesModel], ['nft', 'nft', nftModel]] as const
  return views.flatMap(([key, label, model]) => (before[key] === undefined && after[key] === undefined ? [] : diffModels(label, model(before[key] ?? ''), model(after[key] ?? ''))))
}

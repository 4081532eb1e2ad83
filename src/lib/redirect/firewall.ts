// Installing and removing the rule set in a namespace with iptables-restore (per family, of the chosen
// variant) or nft, and snapshots of the namespace's firewall before/after, so removal can prove it restored
// what the firewall was before `add` (compared for what it does: compare.ts).
import {hasTool, runTool, toolOutput} from '../exec/tools.js'
import {type Backend, iptablesTool, type IptablesVariant, readIptables, variantOf} from './backend.js'
import {diffSnapshots, type FirewallSnapshot, isEmptyTable} from './compare.js'
import {
  expectedNftRules, type Family, NFT_TABLES, normalizeIptablesSave, parseIptablesSave, parseNftTable, renderNftScript,
  renderRemoval, renderRestore, type RuleSetOptions, rulesMatch, TABLES, tablesUsed,
} from './rules.js'

export type {FirewallSnapshot} from './compare.js'

/** `nft list ruleset` without stateful data (counters, quotas) and iptables-nft's warnings. */
export async function readNftRuleset(netns: string): Promise<string> {
  const text = await toolOutput('nft', ['-s', 'list', 'ruleset'], {netns})
  return text
    .split('\n')
    .map((line) => line.replace(/# Warning:.*$/, '').replace(/ counter packets \d+ bytes \d+/, '').trimEnd())
    .filter((line) => line !== '')
    .join('\n')
}

export async function snapshotFirewall(netns: string, backend: Backend, families: readonly Family[]): Promise<FirewallSnapshot> {
  const variant = variantOf(backend)
  if (!variant) return {nft: await readNftRuleset(netns)}
  const snapshot: FirewallSnapshot = {}
  for (const family of families) snapshot[`iptables${family}`] = normalizeIptablesSave(await readIptables(netns, variant, family))
  return snapshot
}

const restore = async (netns: string, variant: IptablesVariant, family: Family, input: string): Promise<void> => {
  await runTool(await iptablesTool(variant, family, 'restore'), ['--noflush'], {input, netns})
}

/** Install (or repair) the rule set; returns whether anything changed. Re-running changes nothing. */
export async function applyFirewall(netns: string, backend: Backend, families: readonly Family[], options: RuleSetOptions): Promise<{changed: boolean}> {
  const variant = variantOf(backend)
  if (!variant) {
    if (await nftMatches(netns, options)) return {changed: false}
    await runTool('nft', ['-f', '-'], {input: renderNftScript(options), netns})
    return {changed: true}
  }

  let changed = false
  for (const family of families) {
    const current = parseIptablesSave(await readIptables(netns, variant, family))
    if (rulesMatch(family, options, current)) continue
    // A leftover with a different shape (e.g. DNS capture toggled): drop our chains first.
    const removal = renderRemoval(current)
    if (removal) await restore(netns, variant, family, removal)
    const fresh = parseIptablesSave(await readIptables(netns, variant, family))
    await restore(netns, variant, family, renderRestore(family, options, fresh))
    changed = true
  }

  return {changed}
}

async function nftMatches(netns: string, options: RuleSetOptions): Promise<boolean> {
  const wanted = expectedNftRules(options)
  for (const table of TABLES) {
    const listed = await runTool('nft', ['list', 'table', 'inet', NFT_TABLES[table]], {allowFailure: true, netns})
    const used = tablesUsed(options).includes(table)
    if (listed.exitCode !== 0) {
      if (used) return false
      continue
    }

    if (!used) return false
    const chains = parseNftTable(listed.stdout)
    for (const chain of ['prerouting', 'output']) {
      const want = wanted.filter((rule) => rule.table === table && rule.chain === chain).map((rule) => rule.rule)
      if (JSON.stringify(chains.get(chain) ?? []) !== JSON.stringify(want)) return false
    }
  }

  return true
}

export interface FirewallRemoval {
  /** what differs from before `add`, in words (none: restored) */
  differences: string[]
  /** empty tables that stay because they cannot be deleted here (they change nothing), in words */
  kept: string[]
}

/** Remove our rules and what we created that is empty again, then compare with the snapshot taken before `add`. */
export async function removeFirewall(netns: string, backend: Backend, families: readonly Family[], before: FirewallSnapshot): Promise<FirewallRemoval> {
  const variant = variantOf(backend)
  if (!variant) {
    for (const table of Object.values(NFT_TABLES)) await runTool('nft', ['delete', 'table', 'inet', table], {allowFailure: true, netns})
  } else {
    for (const family of families) {
      const removal = renderRemoval(parseIptablesSave(await readIptables(netns, variant, family)))
      if (removal) await restore(netns, variant, family, removal)
      if (variant === 'nft') await dropWhatWeCreated(netns, family, before[`iptables${family}`])
    }
  }

  const after = await snapshotFirewall(netns, backend, families)
  return {differences: diffSnapshots(backend, before, after), kept: variant ? emptyTablesKept(variant, families, before, after) : []}
}

/**
 * iptables-nft creates a table (mangle/nat/raw) and its built-in chains the first time a rule goes in, and
 * they stay, empty, after the rules are gone. What was absent before `add` and is empty now is deleted with
 * `nft` when it is installed, so the namespace's `iptables-save` is byte-identical to before.
 */
async function dropWhatWeCreated(netns: string, family: Family, beforeText: string | undefined): Promise<void> {
  if (beforeText === undefined || !(await hasTool('nft'))) return
  const nftFamily = family === 6 ? 'ip6' : 'ip'
  const before = parseIptablesSave(beforeText)
  for (const [table, saved] of parseIptablesSave(await readIptables(netns, 'nft', family))) {
    const had = before.get(table)
    if (!had) {
      if (isEmptyTable(saved)) await runTool('nft', ['delete', 'table', nftFamily, table], {allowFailure: true, netns})
      continue
    }

    for (const chain of saved.chains) {
      const createdEmpty = !had.chains.includes(chain) && saved.policies.get(chain) === 'ACCEPT' && saved.rules.get(chain)?.length === 0
      if (createdEmpty) await runTool('nft', ['delete', 'chain', nftFamily, table, chain], {allowFailure: true, netns})
    }
  }
}

function emptyTablesKept(variant: IptablesVariant, families: readonly Family[], before: FirewallSnapshot, after: FirewallSnapshot): string[] {
  const why = variant === 'legacy' ? 'iptables-legacy cannot delete a table' : 'deleting it needs `nft` (Debian package nftables)'
  const kept: string[] = []
  for (const family of families) {
    const had = parseIptablesSave(before[`iptables${family}`] ?? '')
    for (const [table, saved] of parseIptablesSave(after[`iptables${family}`] ?? '')) {
      if (!had.has(table) && isEmptyTable(saved)) kept.push(`the empty ${table} table (IPv${family}) stays: ${why}; it changes nothing`)
    }
  }

  return kept
}

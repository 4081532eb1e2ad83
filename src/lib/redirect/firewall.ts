// Installing and removing the rule set in a namespace with iptables-restore (per family) or nft, and
// snapshots of the namespace's firewall before/after, so removal can prove it restored the prior state.
import {findTool, hasTool, runTool, toolOutput} from '../exec/tools.js'
import {
  expectedNftRules, type Family, NFT_TABLES, normalizeIptablesSave, parseIptablesSave, parseNftTable, renderNftScript,
  renderRemoval, renderRestore, type RuleSetOptions, rulesMatch, TABLES, tablesUsed,
} from './rules.js'

export type Backend = 'iptables' | 'nft'

/** Firewall state in a comparable text form: `iptables4`/`iptables6` (normalised save) or `nft`. */
export type FirewallSnapshot = Partial<Record<'iptables4' | 'iptables6' | 'nft', string>>

const saveTool = (family: Family): string => (family === 6 ? 'ip6tables-save' : 'iptables-save')
const restoreTool = (family: Family): string => (family === 6 ? 'ip6tables-restore' : 'iptables-restore')

/** iptables when its restore tool is installed (or asked for), nft otherwise; a clear error when neither is. */
export async function chooseBackend(requested?: Backend): Promise<Backend> {
  if (requested === 'nft') {
    await findTool('nft')
    return 'nft'
  }

  if (requested === 'iptables' || (await hasTool('iptables-restore')) || !(await hasTool('nft'))) {
    await findTool('iptables-restore')
    return 'iptables'
  }

  return 'nft'
}

export async function readIptables(netns: string, family: Family): Promise<string> {
  return toolOutput(saveTool(family), [], {netns})
}

/** `nft list ruleset` without counters and iptables-nft's warnings. */
export async function readNftRuleset(netns: string): Promise<string> {
  const text = await toolOutput('nft', ['list', 'ruleset'], {netns})
  return text
    .split('\n')
    .map((line) => line.replace(/# Warning:.*$/, '').replace(/ counter packets \d+ bytes \d+/, '').trimEnd())
    .filter((line) => line !== '')
    .join('\n')
}

export async function snapshotFirewall(netns: string, backend: Backend, families: readonly Family[]): Promise<FirewallSnapshot> {
  if (backend === 'nft') return {nft: await readNftRuleset(netns)}
  const snapshot: FirewallSnapshot = {}
  for (const family of families) snapshot[`iptables${family}`] = normalizeIptablesSave(await readIptables(netns, family))
  return snapshot
}

/** Install (or repair) the rule set; returns whether anything changed. Re-running changes nothing. */
export async function applyFirewall(netns: string, backend: Backend, families: readonly Family[], options: RuleSetOptions): Promise<{changed: boolean}> {
  if (backend === 'nft') {
    const expected = renderNftScript(options)
    if (await nftMatches(netns, options)) return {changed: false}
    await runTool('nft', ['-f', '-'], {input: expected, netns})
    return {changed: true}
  }

  let changed = false
  for (const family of families) {
    const current = parseIptablesSave(await readIptables(netns, family))
    if (rulesMatch(family, options, current)) continue
    // A leftover with a different shape (e.g. DNS capture toggled): drop our chains first.
    const removal = renderRemoval(current)
    if (removal) await runTool(restoreTool(family), ['--noflush'], {input: removal, netns})
    const fresh = parseIptablesSave(await readIptables(netns, family))
    await runTool(restoreTool(family), ['--noflush'], {input: renderRestore(family, options, fresh), netns})
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

/** Remove our rules, then compare with the snapshot taken before `add`; returns the differences (none = exact restore). */
export async function removeFirewall(netns: string, backend: Backend, families: readonly Family[], before: FirewallSnapshot): Promise<string[]> {
  if (backend === 'nft') {
    for (const table of Object.values(NFT_TABLES)) await runTool('nft', ['delete', 'table', 'inet', table], {allowFailure: true, netns})
  } else {
    for (const family of families) {
      const current = parseIptablesSave(await readIptables(netns, family))
      const removal = renderRemoval(current)
      if (removal) await runTool(restoreTool(family), ['--noflush'], {input: removal, netns})
      await dropTablesWeCreated(netns, family, before[`iptables${family}`])
    }
  }

  const after = await snapshotFirewall(netns, backend, families)
  return diffSnapshots(before, after)
}

/**
 * iptables-nft creates a table (mangle/nat/raw) the first time a rule goes in, and it stays, empty,
 * after the rules are gone. A table that was absent before `add` and is empty now is deleted, so the
 * namespace's `iptables-save` is byte-identical to before. (iptables-legacy tables cannot be deleted.)
 */
async function dropTablesWeCreated(netns: string, family: Family, beforeText: string | undefined): Promise<void> {
  if (beforeText === undefined || !(await hasTool('nft'))) return
  const version = await runTool(family === 6 ? 'ip6tables' : 'iptables', ['-V'], {allowFailure: true})
  if (!version.stdout.includes('nf_tables')) return
  const before = parseIptablesSave(beforeText)
  const now = parseIptablesSave(await readIptables(netns, family))
  for (const [table, saved] of now) {
    if (before.has(table)) continue
    const empty = [...saved.rules.values()].every((rules) => rules.length === 0) && saved.chains.every((chain) => chain.toUpperCase() === chain && !chain.startsWith('ZTCTL_'))
    if (empty) await runTool('nft', ['delete', 'table', family === 6 ? 'ip6' : 'ip', table], {allowFailure: true, netns})
  }
}

/** Line differences between two snapshots, in words ("missing: …" / "extra: …"). */
export function diffSnapshots(before: FirewallSnapshot, after: FirewallSnapshot): string[] {
  const differences: string[] = []
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)]) as Set<keyof FirewallSnapshot>) {
    const was = before[key] ?? ''
    const is = after[key] ?? ''
    if (was === is) continue
    const wasLines = was.split('\n')
    const isLines = is.split('\n')
    for (const line of wasLines) if (!isLines.includes(line)) differences.push(`${key}: missing since add: ${line}`)
    for (const line of isLines) if (!wasLines.includes(line)) differences.push(`${key}: extra since add: ${line}`)
    if (differences.length === 0) differences.push(`${key}: same lines in a different order`)
  }

  return differences
}

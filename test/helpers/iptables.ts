// The two iptables of Debian's iptables package, named explicitly so a test never depends on which one the
// machine's `iptables` alternative points at:
//
//   for (const variant of IPTABLES_VARIANTS) test(`… (iptables-${variant})`, …)
//   await topo.execOk(pod.netns, iptablesOf(variant, 6), ['-A', 'INPUT', …])   // ip6tables-legacy / ip6tables-nft
//   await savedText(topo, pod.netns, variant, 4)                                  // iptables-VARIANT-save, comments and counters aside
import {normalizeIptablesSave} from '../../src/lib/redirect/rules.js'
import type {Topology} from './netns.js'

export const IPTABLES_VARIANTS = ['legacy', 'nft'] as const
export type IptablesVariant = (typeof IPTABLES_VARIANTS)[number]

export const otherVariant = (variant: IptablesVariant): IptablesVariant => (variant === 'legacy' ? 'nft' : 'legacy')

export const iptablesOf = (variant: IptablesVariant, family: 4 | 6 = 4): string => `${family === 6 ? 'ip6tables' : 'iptables'}-${variant}`

export async function savedText(topo: Topology, netns: string, variant: IptablesVariant, family: 4 | 6 = 4): Promise<string> {
  return normalizeIptablesSave(await topo.execOk(netns, `${iptablesOf(variant, family)}-save`))
}

/** Save text split per table (`*nat` … `COMMIT`): the variants print the same tables in different orders. */
export function tablesOf(saveText: string): Map<string, string> {
  const tables = new Map<string, string>()
  for (const block of saveText.split(/^(?=\*)/m).filter((part) => part.startsWith('*'))) tables.set(block.split('\n')[0]!.slice(1), block.trimEnd())
  return tables
}

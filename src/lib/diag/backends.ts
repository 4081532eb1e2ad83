// `diag redirect`'s look at the back ends the namespace does not use: rules written with the other iptables
// variant (iptables-legacy beside iptables-nft, or the reverse) act on every packet too, but the tool of the
// namespace's own back end does not list them: a common real-world confusion, and after a redirect made
// with the other variant, traffic redirected twice.
import {type Backend, type IptablesVariant, IPTABLES_VARIANTS, iptablesTool, iptablesToolName, readIptables, variantOf} from '../redirect/backend.js'
import {iptablesModel} from '../redirect/compare.js'
import {type Family, OUR_CHAINS} from '../redirect/rules.js'
import type {DiagCheck} from './check.js'

/** The `iptables`/`ip6tables` command of a variant, as a fix command can run it. */
export const iptablesCommand = (variant: IptablesVariant, family: Family): Promise<string> => iptablesTool(variant, family, 'iptables')

const isOurs = (line: string): boolean => OUR_CHAINS.some((chain) => line.includes(chain))

/** The command that undoes one line of a model: `-A` → `-D`, a policy back to ACCEPT. */
const undoOf = (line: string): string => (/ -P \S+ \S+$/.test(line) ? line.replace(/\S+$/, 'ACCEPT') : line.replace(' -A ', ' -D '))

/** One failing check per other iptables variant and family that holds rules in the namespace. */
export async function checkOtherBackends(netns: string, backend: Backend, families: readonly Family[]): Promise<DiagCheck[]> {
  const checks: DiagCheck[] = []
  const own = variantOf(backend)
  for (const variant of IPTABLES_VARIANTS.filter((candidate) => candidate !== own)) {
    for (const family of families) {
      const tool = await iptablesCommand(variant, family).catch(() => undefined)
      if (!tool) continue // not installed: nothing can have been written with it
      let lines = [...iptablesModel(await readIptables(netns, variant, family)).values()].flat()
      // Beside our nft tables, iptables-nft rules are the same nf_tables (`nft list ruleset` shows them): only ztctl's own count.
      if (backend === 'nft' && variant === 'nft') lines = lines.filter((line) => isOurs(line))
      if (lines.length === 0) continue
      const ownListing = own ? iptablesToolName(own, family, 'save') : 'nft list ruleset'
      const ours = lines.some((line) => isOurs(line))
      const example = `nsenter --net=${netns} -- ${tool} ${undoOf(lines.find((line) => isOurs(line)) ?? lines[0]!)}`
      checks.push({
        area: 'firewall',
        fix: ours
          ? `delete ztctl's rules from iptables-${variant}: each jump to ${OUR_CHAINS.join('/')} (e.g. \`${example}\`), then \`-F\` and \`-X\` of those chains in each table; \`nsenter --net=${netns} -- ${tool}-save\` lists them`
          : `use one back end: re-create the rules you need with ${backend}, then delete them from iptables-${variant}, one command per rule (e.g. \`${example}\`); \`nsenter --net=${netns} -- ${tool}-save\` lists them`,
        id: `firewall/other-backend/iptables-${variant}${family}`,
        message: `${lines.length} rule(s) written with iptables-${variant} (IPv${family}) beside this namespace's ${backend} rules, e.g. \`${lines[0]}\`: both act on every packet, but \`${ownListing}\` does not show them`
          + (ours ? `; ztctl's own chains are among them (left by a redirect made with iptables-${variant}), so traffic is redirected twice` : ''),
        ok: false,
      })
    }
  }

  return checks
}

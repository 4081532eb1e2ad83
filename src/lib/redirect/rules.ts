// The in-pod redirect rule set (Istio's current REDIRECT-mode rules, cni/pkg/iptables/testdata/default.golden,
// with our chain names), as data: each rule carries what it is for, so `diag redirect` can say in words
// what a missing one breaks. Rules are written in the canonical form `iptables-save` prints, so the text
// we restore is byte-identical to what we read back.

export const SKIP_MARK = '0x539'
export const CONN_MARK = '0x111'
export const MARK_MASK = '0xfff'
export const ROUTE_TABLE = 100
export const RULE_PREF = 32_764
export const PORTS = {dns: 15_053, hbone: 15_008, inbound: 15_006, outbound: 15_001} as const
export const CHAIN_PRERT = 'ZTCTL_PRERT'
export const CHAIN_OUTPUT = 'ZTCTL_OUTPUT'
export const OUR_CHAINS = [CHAIN_OUTPUT, CHAIN_PRERT] as const
/** The kubelet probe source after the host's SNAT (Istio's link-local probe address). */
const PROBE_SOURCE = {4: '169.254.7.127/32', 6: 'fd16:9254:7127:1337:ffff:ffff:ffff:ffff/128'} as const
const LOOPBACK = {4: '127.0.0.1/32', 6: '::1/128'} as const

export type Family = 4 | 6
export type Table = 'mangle' | 'nat' | 'raw'
export const TABLES: readonly Table[] = ['mangle', 'nat', 'raw']

export interface RuleSetOptions {
  dnsCapture: boolean
}

export interface RuleSpec {
  /** stable key, e.g. 'nat/outbound-redirect' */
  id: string
  table: Table
  chain: string
  /** the rule after `-A CHAIN `, canonical iptables-save form */
  spec: string
  /** what it does, e.g. 'outbound REDIRECT to 15001' */
  what: string
  /** what breaks without it */
  impact: string
}

/** The rules for one address family, in chain order. */
export function expectedRules(family: Family, options: RuleSetOptions): RuleSpec[] {
  const lo = LOOPBACK[family]
  const probe = PROBE_SOURCE[family]
  const noSkipMark = `-m mark ! --mark ${SKIP_MARK}/${MARK_MASK}`
  const jumps = (table: Table): RuleSpec[] => [
    {chain: 'PREROUTING', id: `${table}/prerouting-jump`, impact: `the ${table} rules for incoming packets are never evaluated`, spec: `-j ${CHAIN_PRERT}`, table, what: `${table} PREROUTING jump to ${CHAIN_PRERT}`},
    {chain: 'OUTPUT', id: `${table}/output-jump`, impact: `the ${table} rules for outgoing packets are never evaluated`, spec: `-j ${CHAIN_OUTPUT}`, table, what: `${table} OUTPUT jump to ${CHAIN_OUTPUT}`},
  ]
  const rules: RuleSpec[] = [
    ...jumps('mangle'),
    {chain: CHAIN_PRERT, id: 'mangle/connmark-agent', impact: 'the agent\'s own connections are not recognised, so their replies are redirected back into the agent', spec: `-m mark --mark ${SKIP_MARK}/${MARK_MASK} -j CONNMARK --set-xmark ${CONN_MARK}/${MARK_MASK}`, table: 'mangle', what: `connmark ${CONN_MARK} for agent traffic (mark ${SKIP_MARK})`},
    {chain: CHAIN_OUTPUT, id: 'mangle/restore-mark', impact: 'replies on the agent\'s connections lose their mark and are not routed back to the agent\'s listeners', spec: `-m connmark --mark ${CONN_MARK}/${MARK_MASK} -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff`, table: 'mangle', what: `restore of connmark ${CONN_MARK} onto packets`},
    ...jumps('nat'),
    {chain: CHAIN_OUTPUT, id: 'nat/probe-output-accept', impact: 'health-probe replies are sent through the agent', spec: `-d ${probe} -p tcp -m tcp -j ACCEPT`, table: 'nat', what: `ACCEPT of health-probe traffic to ${probe}`},
  ]
  if (options.dnsCapture) {
    rules.push(
      {chain: CHAIN_OUTPUT, id: 'nat/dns-udp-redirect', impact: 'DNS queries over UDP bypass the agent\'s DNS proxy', spec: `! -o lo -p udp ${noSkipMark} -m udp --dport 53 -j REDIRECT --to-ports ${PORTS.dns}`, table: 'nat', what: `DNS (UDP 53) REDIRECT to ${PORTS.dns}`},
      {chain: CHAIN_OUTPUT, id: 'nat/dns-tcp-redirect', impact: 'DNS queries over TCP bypass the agent\'s DNS proxy', spec: `! -d ${lo} -p tcp -m tcp --dport 53 ${noSkipMark} -j REDIRECT --to-ports ${PORTS.dns}`, table: 'nat', what: `DNS (TCP 53) REDIRECT to ${PORTS.dns}`},
    )
  }

  rules.push(
    {chain: CHAIN_OUTPUT, id: 'nat/connmark-accept', impact: 'packets of the agent\'s connections are redirected to the agent again (loops)', spec: `-p tcp -m mark --mark ${CONN_MARK}/${MARK_MASK} -j ACCEPT`, table: 'nat', what: `ACCEPT of packets marked ${CONN_MARK}`},
    {chain: CHAIN_OUTPUT, id: 'nat/loopback-accept', impact: 'traffic the pod sends to its own addresses is redirected to the outbound listener', spec: `! -d ${lo} -o lo -j ACCEPT`, table: 'nat', what: 'ACCEPT of traffic to the pod\'s own addresses over lo'},
    {chain: CHAIN_OUTPUT, id: 'nat/outbound-redirect', impact: 'traffic will bypass the mesh', spec: `! -d ${lo} -p tcp ${noSkipMark} -j REDIRECT --to-ports ${PORTS.outbound}`, table: 'nat', what: `outbound REDIRECT to ${PORTS.outbound}`},
    {chain: CHAIN_PRERT, id: 'nat/probe-prerouting-accept', impact: 'health probes from the node are sent through the agent', spec: `-s ${probe} -p tcp -m tcp -j ACCEPT`, table: 'nat', what: `ACCEPT of health probes from ${probe}`},
    {chain: CHAIN_PRERT, id: 'nat/inbound-redirect', impact: 'inbound traffic will bypass the mesh and its policies', spec: `! -d ${lo} -p tcp -m tcp ! --dport ${PORTS.hbone} ${noSkipMark} -j REDIRECT --to-ports ${PORTS.inbound}`, table: 'nat', what: `inbound REDIRECT to ${PORTS.inbound}`},
  )
  if (options.dnsCapture) {
    rules.push(
      ...jumps('raw'),
      {chain: CHAIN_OUTPUT, id: 'raw/dns-ct-zone-output', impact: 'the agent\'s upstream DNS flows share conntrack entries with the pod\'s (answers can be mis-NATed)', spec: `-p udp -m mark --mark ${SKIP_MARK}/${MARK_MASK} -m udp --dport 53 -j CT --zone 1`, table: 'raw', what: 'conntrack zone 1 for the agent\'s DNS queries'},
      {chain: CHAIN_PRERT, id: 'raw/dns-ct-zone-prerouting', impact: 'DNS answers to the agent share conntrack entries with the pod\'s', spec: `-p udp ${noSkipMark} -m udp --sport 53 -j CT --zone 1`, table: 'raw', what: 'conntrack zone 1 for DNS answers'},
    )
  }

  return rules
}

export function tablesUsed(options: RuleSetOptions): Table[] {
  return options.dnsCapture ? ['mangle', 'nat', 'raw'] : ['mangle', 'nat']
}

/** A parsed `iptables-save`: per table, its chains (in order), each one's policy (`-` for a user chain) and rules (the text after `-A CHAIN `). */
export type SavedTables = Map<string, SavedTable>
export interface SavedTable {
  chains: string[]
  policies: Map<string, string>
  rules: Map<string, string[]>
}

export function parseIptablesSave(text: string): SavedTables {
  const tables: SavedTables = new Map()
  let current: SavedTable | undefined
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line.startsWith('*')) {
      current = {chains: [], policies: new Map(), rules: new Map()}
      tables.set(line.slice(1), current)
    } else if (current && line.startsWith(':')) {
      const [chain, policy] = line.slice(1).split(' ') as [string, string | undefined]
      current.chains.push(chain)
      current.policies.set(chain, policy ?? '-')
      current.rules.set(chain, current.rules.get(chain) ?? [])
    } else if (current && line.startsWith('-A ')) {
      const [, chain, ...rest] = line.split(' ')
      const list = current.rules.get(chain!) ?? []
      list.push(rest.join(' '))
      current.rules.set(chain!, list)
    }
  }

  return tables
}

/** `iptables-save` text without comments and with zeroed counters: stable for byte comparison. */
export function normalizeIptablesSave(text: string): string {
  return text
    .split('\n')
    .filter((line) => !line.startsWith('#') && line.trim() !== '')
    .map((line) => line.replace(/\[\d+:\d+\]$/, '[0:0]').replace(/^\[\d+:\d+\] /, ''))
    .join('\n')
}

/** The golden text: the rule set as an Istio-style iptables-restore input (one family). */
export function renderRuleSet(family: Family, options: RuleSetOptions): string {
  return renderRestore(family, options, undefined)
}

/**
 * iptables-restore --noflush input that (re)creates our chains. Declaring a chain flushes it, so running
 * it twice gives the same result; the jumps from the built-in chains are added only when `current`
 * (the namespace's parsed iptables-save) does not already have them.
 */
export function renderRestore(family: Family, options: RuleSetOptions, current: SavedTables | undefined): string {
  const rules = expectedRules(family, options)
  const lines: string[] = []
  for (const table of tablesUsed(options)) {
    const inTable = rules.filter((rule) => rule.table === table)
    lines.push(`*${table}`)
    if (current) {
      for (const chain of OUR_CHAINS) lines.push(`:${chain} - [0:0]`)
    } else {
      for (const chain of [CHAIN_PRERT, CHAIN_OUTPUT]) lines.push(`-N ${chain}`)
    }

    for (const rule of inTable) {
      const isJump = !OUR_CHAINS.includes(rule.chain as (typeof OUR_CHAINS)[number])
      if (isJump && current?.get(table)?.rules.get(rule.chain)?.includes(rule.spec)) continue
      lines.push(`-A ${rule.chain} ${rule.spec}`)
    }

    lines.push('COMMIT')
  }

  return `${lines.join('\n')}\n`
}

/** iptables-restore --noflush input removing our jumps and chains from the tables that have them. */
export function renderRemoval(current: SavedTables): string | undefined {
  const lines: string[] = []
  for (const [table, saved] of current) {
    const ours = OUR_CHAINS.filter((chain) => saved.chains.includes(chain))
    if (ours.length === 0) continue
    lines.push(`*${table}`)
    for (const [chain, rules] of saved.rules) {
      if (OUR_CHAINS.includes(chain as (typeof OUR_CHAINS)[number])) continue
      // Every copy of a jump to our chains goes, also duplicates someone added by hand.
      for (const rule of rules) if (ours.some((ourChain) => rule === `-j ${ourChain}`)) lines.push(`-D ${chain} ${rule}`)
    }

    for (const chain of ours) lines.push(`-F ${chain}`)
    for (const chain of ours) lines.push(`-X ${chain}`)
    lines.push('COMMIT')
  }

  return lines.length > 0 ? `${lines.join('\n')}\n` : undefined
}

/** Whether `current` already holds exactly our rule set for this family (nothing to change). */
export function rulesMatch(family: Family, options: RuleSetOptions, current: SavedTables): boolean {
  const rules = expectedRules(family, options)
  for (const table of TABLES) {
    const saved = current.get(table)
    const inTable = rules.filter((rule) => rule.table === table)
    for (const chain of OUR_CHAINS) {
      const want = inTable.filter((rule) => rule.chain === chain).map((rule) => rule.spec)
      const have = saved?.rules.get(chain)
      if (want.length === 0 ? have !== undefined : JSON.stringify(have) !== JSON.stringify(want)) return false
    }

    for (const rule of inTable.filter((candidate) => !OUR_CHAINS.includes(candidate.chain as (typeof OUR_CHAINS)[number]))) {
      if (saved?.rules.get(rule.chain)?.filter((spec) => spec === rule.spec).length !== 1) return false
    }
  }

  return true
}

// ---- nftables ----

export const NFT_TABLES = {mangle: 'ztctl-mangle', nat: 'ztctl-nat', raw: 'ztctl-raw'} as const

/** The nft rules (canonical `nft list` form, without counters) per table and chain. */
export function expectedNftRules(options: RuleSetOptions): {chain: string; id: string; rule: string; table: Table}[] {
  const mark = `meta mark & 0x00000fff`
  const rules: {chain: string; id: string; rule: string; table: Table}[] = [
    {chain: 'prerouting', id: 'mangle/connmark-agent', rule: `${mark} == 0x00000539 ct mark set ct mark & 0xfffff111 | 0x00000111`, table: 'mangle'},
    {chain: 'output', id: 'mangle/restore-mark', rule: 'ct mark & 0x00000fff == 0x00000111 meta mark set ct mark', table: 'mangle'},
    {chain: 'prerouting', id: 'nat/probe-prerouting-accept', rule: 'ip saddr 169.254.7.127 meta l4proto tcp accept', table: 'nat'},
    {chain: 'prerouting', id: 'nat/probe-prerouting-accept-v6', rule: 'ip6 saddr fd16:9254:7127:1337:ffff:ffff:ffff:ffff meta l4proto tcp accept', table: 'nat'},
    {chain: 'prerouting', id: 'nat/inbound-redirect', rule: `ip daddr != 127.0.0.1 tcp dport != 15008 ${mark} != 0x00000539 redirect to :15006`, table: 'nat'},
    {chain: 'prerouting', id: 'nat/inbound-redirect-v6', rule: `ip6 daddr != ::1 tcp dport != 15008 ${mark} != 0x00000539 redirect to :15006`, table: 'nat'},
    {chain: 'output', id: 'nat/probe-output-accept', rule: 'ip daddr 169.254.7.127 meta l4proto tcp accept', table: 'nat'},
    {chain: 'output', id: 'nat/probe-output-accept-v6', rule: 'ip6 daddr fd16:9254:7127:1337:ffff:ffff:ffff:ffff meta l4proto tcp accept', table: 'nat'},
  ]
  if (options.dnsCapture) {
    rules.push(
      {chain: 'output', id: 'nat/dns-udp-redirect', rule: `oifname != "lo" udp dport 53 ${mark} != 0x00000539 redirect to :15053`, table: 'nat'},
      {chain: 'output', id: 'nat/dns-tcp-redirect', rule: `ip daddr != 127.0.0.1 tcp dport 53 ${mark} != 0x00000539 redirect to :15053`, table: 'nat'},
      {chain: 'output', id: 'nat/dns-tcp-redirect-v6', rule: `ip6 daddr != ::1 tcp dport 53 ${mark} != 0x00000539 redirect to :15053`, table: 'nat'},
    )
  }

  rules.push(
    {chain: 'output', id: 'nat/connmark-accept', rule: `meta l4proto tcp ${mark} == 0x00000111 accept`, table: 'nat'},
    {chain: 'output', id: 'nat/loopback-accept', rule: 'oifname "lo" ip daddr != 127.0.0.1 accept', table: 'nat'},
    {chain: 'output', id: 'nat/loopback-accept-v6', rule: 'oifname "lo" ip6 daddr != ::1 accept', table: 'nat'},
    {chain: 'output', id: 'nat/outbound-redirect', rule: `ip daddr != 127.0.0.1 meta l4proto tcp ${mark} != 0x00000539 redirect to :15001`, table: 'nat'},
    {chain: 'output', id: 'nat/outbound-redirect-v6', rule: `ip6 daddr != ::1 meta l4proto tcp ${mark} != 0x00000539 redirect to :15001`, table: 'nat'},
  )
  if (options.dnsCapture) {
    rules.push(
      {chain: 'output', id: 'raw/dns-ct-zone-output', rule: `udp dport 53 ${mark} == 0x00000539 ct zone set 1`, table: 'raw'},
      {chain: 'prerouting', id: 'raw/dns-ct-zone-prerouting', rule: `udp sport 53 ${mark} != 0x00000539 ct zone set 1`, table: 'raw'},
    )
  }

  return rules
}

const NFT_HOOKS: Record<Table, {output: string; prerouting: string}> = {
  mangle: {output: 'type route hook output priority mangle; policy accept;', prerouting: 'type filter hook prerouting priority mangle; policy accept;'},
  nat: {output: 'type nat hook output priority -100; policy accept;', prerouting: 'type nat hook prerouting priority dstnat; policy accept;'},
  raw: {output: 'type filter hook output priority raw; policy accept;', prerouting: 'type filter hook prerouting priority raw; policy accept;'},
}

/** One atomic `nft -f` script that (re)creates our tables: add + delete first makes it idempotent. */
export function renderNftScript(options: RuleSetOptions): string {
  const rules = expectedNftRules(options)
  const lines: string[] = []
  for (const table of tablesUsed(options)) {
    const name = NFT_TABLES[table]
    lines.push(`add table inet ${name}`, `delete table inet ${name}`, `table inet ${name} {`)
    for (const chain of ['prerouting', 'output'] as const) {
      lines.push(`\tchain ${chain} {`, `\t\t${NFT_HOOKS[table][chain]}`)
      for (const rule of rules.filter((candidate) => candidate.table === table && candidate.chain === chain)) lines.push(`\t\t${rule.rule}`)
      lines.push('\t}')
    }

    lines.push('}')
  }

  return `${lines.join('\n')}\n`
}

/** Rules per "table/chain" from `nft list table inet NAME` output (counters dropped). */
export function parseNftTable(text: string): Map<string, string[]> {
  const chains = new Map<string, string[]>()
  let chain: string | undefined
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    const chainMatch = /^chain (\S+) \{$/.exec(line)
    if (chainMatch) {
      chain = chainMatch[1]!
      chains.set(chain, [])
    } else if (line === '}') {
      chain = undefined
    } else if (chain && line !== '' && !line.startsWith('type ') && !line.startsWith('#')) {
      chains.get(chain)!.push(line.replace(/ counter packets \d+ bytes \d+/, '').replace(/ {2,}/g, ' '))
    }
  }

  return chains
}

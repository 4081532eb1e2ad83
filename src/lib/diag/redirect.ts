// `ztctl diag redirect`: enter a namespace and check everything the redirect needs — the agent's
// socket, its listeners, each rule on the namespace's back end (and rules of the other iptables), the ip
// rule and the table-100 route — saying in words what is missing or wrong, what breaks because of it, and
// the command that fixes it.
import {ZtError} from '../errors.js'
import {DEFAULT_INPOD_SOCKET, DEFAULT_INPOD_STATE_DIR} from '../inpod/protocol.js'
import {probeAgent} from '../redirect/agent-client.js'
import {type Backend, chooseBackend, type IptablesVariant, readIptables, recordedBackend, variantInUse, variantOf} from '../redirect/backend.js'
import {findRecord} from '../redirect/redirect.js'
import {readRouting, routeArgs, ruleArgs} from '../redirect/routing.js'
import {
  expectedNftRules, expectedRules, type Family, NFT_TABLES, OUR_CHAINS, parseIptablesSave, parseNftTable, PORTS, type RuleSetOptions, TABLES,
} from '../redirect/rules.js'
import type {RedirectRecord} from '../redirect/state.js'
import {familiesOf, type NetnsTarget, readNetnsAddresses, resolveNetnsPath} from '../redirect/target.js'
import {runTool} from '../exec/tools.js'
import {checkOtherBackends, iptablesCommand} from './backends.js'
import type {DiagCheck} from './check.js'
import {readListeners} from './netns-views.js'

export type {DiagCheck} from './check.js'

export interface RedirectDiagnosis {
  netns: string
  workload?: {namespace: string; name: string; serviceAccount: string; uid: string}
  backend: Backend
  dnsCapture: boolean
  healthy: boolean
  checks: DiagCheck[]
}

export interface DiagnoseOptions extends Partial<NetnsTarget> {
  /** NAMESPACE/NAME of a cached workload (instead of --netns/--pid) */
  workload?: string
  stateDir?: string
  agentSocket?: string
  agentTimeoutMs?: number
}

const LISTENERS: {port: number; protocol: 'tcp' | 'udp'; role: string; impact: string; dnsOnly?: boolean}[] = [
  {impact: 'redirected outbound connections will be refused', port: PORTS.outbound, protocol: 'tcp', role: 'outbound'},
  {impact: 'redirected inbound connections will be refused', port: PORTS.inbound, protocol: 'tcp', role: 'inbound'},
  {impact: 'HBONE connections from other workloads will be refused', port: PORTS.hbone, protocol: 'tcp', role: 'HBONE'},
  {dnsOnly: true, impact: 'captured DNS queries get no answer', port: PORTS.dns, protocol: 'udp', role: 'DNS'},
  {dnsOnly: true, impact: 'captured DNS queries over TCP (large answers) are refused', port: PORTS.dns, protocol: 'tcp', role: 'DNS'},
]

export async function diagnoseRedirect(options: DiagnoseOptions): Promise<RedirectDiagnosis> {
  const stateDir = options.stateDir ?? DEFAULT_INPOD_STATE_DIR
  const agentSocket = options.agentSocket ?? DEFAULT_INPOD_SOCKET
  let record: RedirectRecord | undefined
  let netns: string
  if (options.workload !== undefined) {
    record = await findRecord({workload: options.workload}, stateDir)
    netns = await resolveNetnsPath({netns: record.add.netns})
  } else {
    netns = await resolveNetnsPath({netns: options.netns, pid: options.pid})
    record = await findRecord({netns}, stateDir).catch((error: unknown) => {
      if (ZtError.is(error) && error.code === 'ZT_ERR_NOT_FOUND') return undefined
      throw error
    })
  }

  // Without a record, judge against what `redirect add` installs by default.
  const dnsCapture = record?.dnsCapture ?? true
  const families = record?.families ?? familiesOf(await readNetnsAddresses(netns))
  const {backend, how} = await backendOf(netns, families, record)
  const fix = fixCommand(netns, record, stateDir, agentSocket)
  const options_: RuleSetOptions = {dnsCapture}

  const checks: DiagCheck[] = []
  const agent = await probeAgent(agentSocket, {timeoutMs: options.agentTimeoutMs ?? 2000})
  checks.push({
    area: 'agent', id: 'agent/socket', message: agent.ok ? agent.message : `${agent.message}: the workload's listeners are not (re)created`, ok: agent.ok,
    ...(agent.ok ? {} : {fix: `ztctl agent run --inpod-socket ${agentSocket} --state-dir ${stateDir} …`}),
  })
  if (!record) {
    checks.push({area: 'agent', fix, id: 'cache/record', message: `no record of ${netns} in ${stateDir}: the agent will not serve it after a restart`, ok: false})
  }

  const listeners = await readListeners(netns)
  for (const expected of LISTENERS.filter((listener) => dnsCapture || !listener.dnsOnly)) {
    const found = listeners.find((listener) => listener.protocol === expected.protocol && listener.port === expected.port)
    checks.push({
      area: 'listeners', id: `listener/${expected.port}${expected.protocol === 'udp' ? '/udp' : ''}`, ok: found !== undefined,
      ...(found
        ? {message: `${expected.role} listener on ${found.address}:${expected.port}/${expected.protocol}${found.process ? ` (${found.process})` : ''}`}
        : {fix: agent.ok ? fix : `ztctl agent run --inpod-socket ${agentSocket} --state-dir ${stateDir} …`, message: `no ${expected.role} listener on ${expected.port}/${expected.protocol}: ${expected.impact}`}),
    })
  }

  checks.push({area: 'firewall', id: 'firewall/backend', message: `the redirect rules are written with ${backend} (${how})`, ok: true})
  const variant = variantOf(backend)
  if (variant) for (const family of families) checks.push(...(await checkIptables(netns, variant, family, options_, fix)))
  else checks.push(...(await checkNft(netns, options_, fix)))
  checks.push(...(await checkOtherBackends(netns, backend, families)))

  for (const family of families) {
    const routing = await readRouting(netns, family)
    const ip = family === 6 ? 'ip -6' : 'ip'
    checks.push(
      routing.rule
        ? {area: 'routing', id: `routing${family}/rule`, message: `${ip} rule fwmark 0x111/0xfff lookup 100 present`, ok: true}
        : {area: 'routing', fix: `nsenter --net=${netns} -- ip ${ruleArgs(family).join(' ')}`, id: `routing${family}/rule`, message: `${ip} rule "fwmark 0x111/0xfff lookup 100" missing: replies on the agent's connections are not delivered to its listeners`, ok: false},
      routing.route
        ? {area: 'routing', id: `routing${family}/route`, message: `local default route in table 100 (IPv${family}) present`, ok: true}
        : {area: 'routing', fix: `nsenter --net=${netns} -- ip ${routeArgs(family).join(' ')}`, id: `routing${family}/route`, message: `local default route in table 100 (IPv${family}) missing: marked packets are routed out instead of to the agent`, ok: false},
    )
  }

  return {
    backend, checks, dnsCapture, healthy: checks.every((check) => check.ok), netns,
    ...(record ? {workload: {...record.add.workload, uid: record.add.uid}} : {}),
  }
}

/** Rule-by-rule comparison of our chains (and the jumps into them) with the expected set. */
export async function checkIptables(netns: string, variant: IptablesVariant, family: Family, options: RuleSetOptions, fix: string): Promise<DiagCheck[]> {
  const saved = parseIptablesSave(await readIptables(netns, variant, family))
  const expected = expectedRules(family, options)
  const tool = await iptablesCommand(variant, family)
  const checks: DiagCheck[] = []
  for (const rule of expected) {
    const present = saved.get(rule.table)?.rules.get(rule.chain)?.includes(rule.spec) ?? false
    checks.push({
      area: 'firewall', id: `iptables${family}/${rule.id}`, ok: present,
      ...(present
        ? {message: `${rule.what} present (IPv${family})`}
        : {fix, message: `${rule.what} missing (IPv${family}): ${rule.impact}`}),
    })
  }

  for (const table of TABLES) {
    const tableRules = saved.get(table)?.rules
    if (!tableRules) continue
    for (const [chain, rules] of tableRules) {
      const wanted = expected.filter((rule) => rule.table === table && rule.chain === chain).map((rule) => rule.spec)
      const ours = OUR_CHAINS.includes(chain as (typeof OUR_CHAINS)[number])
      for (const [index, spec] of rules.entries()) {
        // In built-in chains only jumps into our chains concern us (and one of each is expected).
        const relevant = ours || OUR_CHAINS.some((ourChain) => spec === `-j ${ourChain}`)
        const duplicate = rules.indexOf(spec) !== index
        if (!relevant || (wanted.includes(spec) && !duplicate)) continue
        checks.push({
          area: 'firewall', fix: `nsenter --net=${netns} -- ${tool} -t ${table} -D ${chain} ${spec}`, id: `iptables${family}/extra/${table}/${chain}/${index}`, ok: false,
          message: `unexpected rule in ${table} ${chain} (IPv${family}): \`${spec}\`${duplicate ? ' (a duplicate)' : ''}: it is not part of the ztctl rule set and may change where traffic goes`,
        })
      }

      const presentWanted = rules.filter((spec) => wanted.includes(spec))
      if (ours && presentWanted.length === wanted.length && JSON.stringify(presentWanted) !== JSON.stringify(wanted)) {
        checks.push({area: 'firewall', fix, id: `iptables${family}/order/${table}/${chain}`, message: `rules of ${table} ${chain} (IPv${family}) are out of order: an ACCEPT may come after the REDIRECT it should pre-empt`, ok: false})
      }
    }
  }

  return checks
}

export async function checkNft(netns: string, options: RuleSetOptions, fix: string): Promise<DiagCheck[]> {
  const checks: DiagCheck[] = []
  const expected = expectedNftRules(options)
  const listed = new Map<string, Map<string, string[]>>()
  for (const table of TABLES) {
    const result = await runTool('nft', ['list', 'table', 'inet', NFT_TABLES[table]], {allowFailure: true, netns})
    if (result.exitCode === 0) listed.set(table, parseNftTable(result.stdout))
  }

  for (const rule of expected) {
    const present = listed.get(rule.table)?.get(rule.chain)?.includes(rule.rule) ?? false
    const what = `nft inet ${NFT_TABLES[rule.table]} ${rule.chain}: ${rule.id.split('/')[1]}`
    checks.push({area: 'firewall', id: `nft/${rule.id}`, ok: present, ...(present ? {message: `${what} present`} : {fix, message: `${what} missing (\`${rule.rule}\`): ${nftImpact(rule.id)}`})})
  }

  for (const [table, chains] of listed) {
    for (const [chain, rules] of chains) {
      for (const [index, text] of rules.entries()) {
        if (expected.some((rule) => rule.table === table && rule.chain === chain && rule.rule === text)) continue
        checks.push({area: 'firewall', fix, id: `nft/extra/${table}/${chain}/${index}`, message: `unexpected rule in inet ${NFT_TABLES[table as keyof typeof NFT_TABLES]} ${chain}: \`${text}\``, ok: false})
      }
    }
  }

  return checks
}

function nftImpact(id: string): string {
  const base = id.replace(/-v6$/, '')
  const spec = expectedRules(4, {dnsCapture: true}).find((rule) => rule.id === base)
  return spec ? `${spec.what}: ${spec.impact}` : 'part of the ztctl rule set'
}

/** The back end to check against, and how that is known: the record's, else what the namespace's rules say. */
async function backendOf(netns: string, families: readonly Family[], record: RedirectRecord | undefined): Promise<{backend: Backend; how: string}> {
  if (record) return {backend: await recordedBackend(record.backend), how: 'recorded by `redirect add`'}
  if (await nftTablesPresent(netns)) return {backend: 'nft', how: 'the namespace has the ztctl-* inet tables'}
  const backend = await chooseBackend(netns, families)
  const variant = variantOf(backend)
  if (!variant) return {backend, how: 'no iptables is installed'}
  return {backend, how: (await variantInUse(netns, variant, families)) ? 'the namespace\'s rules are written with it' : 'the namespace has no rules yet: the machine\'s `iptables`'}
}

async function nftTablesPresent(netns: string): Promise<boolean> {
  const result = await runTool('nft', ['list', 'table', 'inet', NFT_TABLES.nat], {allowFailure: true, netns}).catch(() => undefined)
  return result?.exitCode === 0
}

/** The `ztctl redirect add …` that re-installs everything (idempotent), from the cache record when there is one. */
function fixCommand(netns: string, record: RedirectRecord | undefined, stateDir: string, agentSocket: string): string {
  const workload = record ? `${record.add.workload.namespace}/${record.add.workload.name}` : 'NAMESPACE/NAME'
  const serviceAccount = record?.add.workload.serviceAccount ?? 'SERVICE_ACCOUNT'
  const extras = [
    ...(record && !record.dnsCapture ? ['--no-dns-capture'] : []),
    ...(record?.backend === 'nft' ? ['--backend nft'] : []),
    ...(stateDir === DEFAULT_INPOD_STATE_DIR ? [] : [`--state-dir ${stateDir}`]),
    ...(agentSocket === DEFAULT_INPOD_SOCKET ? [] : [`--agent-socket ${agentSocket}`]),
  ]
  return ['ztctl redirect add', `--netns ${netns}`, `--workload ${workload}`, `--service-account ${serviceAccount}`, ...extras].join(' ')
}

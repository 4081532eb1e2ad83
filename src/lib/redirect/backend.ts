// Which firewall back end a namespace's rules are written with, and the tools of each. Debian's iptables
// package ships two iptables: iptables-legacy (x_tables) and iptables-nft (the same rule language, kept in
// nf_tables); plain `iptables` is whichever one the machine's alternative points at. Rules written with the
// other one still run, but neither tool shows the other's. So ztctl names the variant it uses, keeps to the
// one a namespace already uses, and `diag redirect` flags rules of the other. `nft` is our own inet tables.
import {ZtError} from '../errors.js'
import {debianPackageOf, findTool, hasTool, runTool} from '../exec/tools.js'
import {iptablesModel} from './compare.js'
import type {Family} from './rules.js'

export type IptablesVariant = 'legacy' | 'nft'
export type Backend = 'iptables-legacy' | 'iptables-nft' | 'nft'
/** What `--backend` accepts: a back end, or `iptables` (the variant the namespace uses, else the machine's). */
export const BACKEND_REQUESTS = ['iptables', 'iptables-legacy', 'iptables-nft', 'nft'] as const
export type BackendRequest = (typeof BACKEND_REQUESTS)[number]
export const IPTABLES_VARIANTS: readonly IptablesVariant[] = ['legacy', 'nft']

export const iptablesBackend = (variant: IptablesVariant): Backend => `iptables-${variant}`

export function variantOf(backend: BackendRequest): IptablesVariant | undefined {
  if (backend === 'iptables-legacy') return 'legacy'
  if (backend === 'iptables-nft') return 'nft'
  return undefined
}

export type IptablesCommand = 'iptables' | 'restore' | 'save'

/** The variant's own name of a tool: `ip6tables-legacy-save`, `iptables-nft`, … */
export function iptablesToolName(variant: IptablesVariant | undefined, family: Family, command: IptablesCommand): string {
  return `${family === 6 ? 'ip6tables' : 'iptables'}${variant ? `-${variant}` : ''}${command === 'iptables' ? '' : `-${command}`}`
}

/**
 * The tool to run for a variant: its own name, or the plain one (`iptables-save`) when only that is installed
 * and it is that variant (distributions without the suffixed names). Missing: ZT_ERR_TOOL_MISSING naming it.
 */
export async function iptablesTool(variant: IptablesVariant, family: Family, command: IptablesCommand): Promise<string> {
  const name = iptablesToolName(variant, family, command)
  if (await hasTool(name)) return name
  const plain = iptablesToolName(undefined, family, command)
  if ((await machineVariant()) === variant && (await hasTool(plain))) return plain
  await findTool(name)
  return name
}

/** The variant plain `iptables` is on this machine (`iptables -V` says "nf_tables" or "legacy"), if installed. */
export async function machineVariant(): Promise<IptablesVariant | undefined> {
  if (!(await hasTool('iptables'))) return undefined
  const version = await runTool('iptables', ['-V'], {allowFailure: true})
  return version.stdout.includes('nf_tables') ? 'nft' : 'legacy'
}

async function variantInstalled(variant: IptablesVariant, families: readonly Family[]): Promise<boolean> {
  try {
    for (const family of families) for (const command of ['save', 'restore'] as const) await iptablesTool(variant, family, command)
    return true
  } catch {
    return false
  }
}

/** `iptables-save` of one variant and family inside the namespace. */
export async function readIptables(netns: string, variant: IptablesVariant, family: Family): Promise<string> {
  return (await runTool(await iptablesTool(variant, family, 'save'), [], {netns})).stdout
}

/** Whether the namespace has rules (or a non-ACCEPT policy) written with this variant. */
export async function variantInUse(netns: string, variant: IptablesVariant, families: readonly Family[]): Promise<boolean> {
  for (const family of families) if (iptablesModel(await readIptables(netns, variant, family)).size > 0) return true
  return false
}

/**
 * The back end for `redirect add`: the one asked for (its tools must be there); for `iptables` or nothing,
 * the iptables variant the namespace's own rules are written with, else the machine's `iptables`; nft when
 * no iptables is installed and nothing was asked for.
 */
export async function chooseBackend(netns: string, families: readonly Family[], requested?: BackendRequest): Promise<Backend> {
  if (requested === 'nft') {
    await findTool('nft')
    return 'nft'
  }

  const explicit = requested ? variantOf(requested) : undefined
  if (explicit) {
    for (const family of families) for (const command of ['save', 'restore'] as const) await iptablesTool(explicit, family, command)
    return iptablesBackend(explicit)
  }

  const installed: IptablesVariant[] = []
  for (const variant of IPTABLES_VARIANTS) if (await variantInstalled(variant, families)) installed.push(variant)
  if (installed.length === 0) {
    if (requested === undefined && (await hasTool('nft'))) return 'nft'
    for (const family of families) for (const command of ['restore', 'save'] as const) await findTool(iptablesToolName(undefined, family, command))
    throw new ZtError('ZT_ERR_TOOL_MISSING', 'neither iptables-legacy nor iptables-nft is installed (only a plain iptables of neither kind)', {
      suggestion: `install it: apt-get install ${debianPackageOf('iptables')}`,
    })
  }

  const inUse: IptablesVariant[] = []
  for (const variant of installed) if (await variantInUse(netns, variant, families)) inUse.push(variant)
  if (inUse.length === 1) return iptablesBackend(inUse[0]!)
  const preferred = await machineVariant()
  return iptablesBackend(preferred && installed.includes(preferred) ? preferred : installed[0]!)
}

/** A record's back end; records written before the variants were told apart say `iptables` (the machine's). */
export async function recordedBackend(value: Backend | 'iptables'): Promise<Backend> {
  return value === 'iptables' ? iptablesBackend((await machineVariant()) ?? 'legacy') : value
}

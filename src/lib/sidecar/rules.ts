// The tproxy sidecar's rules, in its OWN network namespace (the agent runs inside the pod, e.g. with
// `ip netns exec`): nat OUTPUT jumps to chain ZTCTL_SIDECAR, which REDIRECTs TCP to each intercepted
// address/CIDR (and port) to the local listener of that service.
//
// Why REDIRECT to one listener per service rather than TPROXY: the application shares the namespace, so
// its connections are locally generated and only pass nat OUTPUT — TPROXY works in PREROUTING only and
// would need a mark, a policy-routing loop through `lo` and IP_TRANSPARENT listeners (the native addon).
// With one listener per service the listener itself names the service, so the original destination
// (SO_ORIGINAL_DST) is not even needed: no addon, the same accept path as inbound tunnels.
//
// Loops are avoided twice: sockets carrying the skip mark 0x539 return first (as in-pod sockets do), and
// the HBONE addresses of the mesh's agents are excluded explicitly, because the agent's own HBONE dials
// are plain Node sockets without a mark. The chain is rewritten atomically (`iptables-restore --noflush`
// flushes only the chains it declares) and removed on exit; the host's other rules are never touched.
import {readFile} from 'node:fs/promises'

import {ZtError} from '../errors.js'
import {runTool} from '../exec/tools.js'
import {INTERCEPT_RANGE} from './addresses.js'

export const SIDECAR_CHAIN = 'ZTCTL_SIDECAR'
export const SKIP_MARK = '0x539/0xfff'
const JUMP = ['-t', 'nat', '-p', 'tcp', '-j', SIDECAR_CHAIN]
/** The DNS range is virtual: a local route makes connect() to it succeed so OUTPUT can redirect it. */
const RANGE_ROUTE = ['local', INTERCEPT_RANGE, 'dev', 'lo']

export interface RedirectRule {
  /** IPv4 CIDR */
  destination: string
  /** destination port; undefined: any */
  port?: number
  service: string
  /** the service's local listener port */
  toPort: number
}

export interface Exclusion {
  destination: string
  port: number
}

/** The iptables-restore input for the chain (pure: what the tests and `diag` compare against). */
export function sidecarRuleText(rules: readonly RedirectRule[], exclusions: readonly Exclusion[]): string {
  const lines = ['*nat', `:${SIDECAR_CHAIN} - [0:0]`, `-A ${SIDECAR_CHAIN} -m mark --mark ${SKIP_MARK} -j RETURN`]
  for (const exclusion of exclusions) lines.push(`-A ${SIDECAR_CHAIN} -d ${exclusion.destination} -p tcp -m tcp --dport ${exclusion.port} -j RETURN`)
  for (const rule of rules) {
    const port = rule.port === undefined ? '' : ` -m tcp --dport ${rule.port}`
    lines.push(`-A ${SIDECAR_CHAIN} -d ${rule.destination} -p tcp${port} -m comment --comment "ztctl ${rule.service}" -j REDIRECT --to-ports ${rule.toPort}`)
  }

  lines.push('COMMIT', '')
  return lines.join('\n')
}

/** CAP_NET_ADMIN (bit 12 of the effective set) is needed to change this namespace's rules. */
export async function assertNetAdmin(statusFile = '/proc/self/status'): Promise<void> {
  const status = await readFile(statusFile, 'utf8').catch(() => '')
  const match = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)
  if (match && (BigInt(`0x${match[1]}`) >> 12n) & 1n) return
  throw new ZtError('ZT_ERR_NET_ADMIN', '`agent run --mode tproxy` needs the NET_ADMIN capability to install its interception rules, and this process does not have it', {
    suggestion: 'run it as root in the pod, or add the capability (Kubernetes: securityContext.capabilities.add: [NET_ADMIN]); `--mode proxy` needs no capabilities',
  })
}

/** Install or replace the chain, link it from nat OUTPUT once, and route the DNS range locally. */
export async function applySidecarRules(text: string): Promise<void> {
  await runTool('iptables-restore', ['--noflush'], {input: text})
  const linked = await runTool('iptables', ['-C', 'OUTPUT', ...JUMP], {allowFailure: true})
  if (linked.exitCode !== 0) await runTool('iptables', ['-I', 'OUTPUT', ...JUMP])
  await runTool('ip', ['route', 'replace', ...RANGE_ROUTE])
}

/** Remove everything applySidecarRules added (also leftovers of a killed run); never fails. */
export async function removeSidecarRules(): Promise<void> {
  // Bounded: a jump added twice by hand would be removed on the second pass.
  for (let pass = 0; pass < 4; pass++) {
    const removed = await runTool('iptables', ['-D', 'OUTPUT', ...JUMP], {allowFailure: true}).catch(() => undefined)
    if (!removed || removed.exitCode !== 0) break
  }

  await runTool('iptables', ['-t', 'nat', '-F', SIDECAR_CHAIN], {allowFailure: true}).catch(() => {})
  await runTool('iptables', ['-t', 'nat', '-X', SIDECAR_CHAIN], {allowFailure: true}).catch(() => {})
  await runTool('ip', ['route', 'del', ...RANGE_ROUTE], {allowFailure: true}).catch(() => {})
}

// Running the host's network tools (iptables-save/-restore, nft, ip, ss, nsenter), optionally inside a
// network namespace, through execa with a timeout. Failures become ZtErrors that name the tool: a
// missing binary says which Debian package provides it; a failing one carries its stderr.
import {constants as fsConstants} from 'node:fs'
import {access, stat} from 'node:fs/promises'
import path from 'node:path'

import {ExitCode, ZtError} from '../errors.js'

/** Debian package of every tool we run, for the "install it" suggestion (iptables: see debianPackageOf). */
const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  ip: 'iproute2',
  nft: 'nftables',
  nsenter: 'util-linux',
  script: 'bsdutils',
  ss: 'iproute2',
  stty: 'coreutils',
}

/** iptables, ip6tables, their -legacy and -nft variants and each one's -save/-restore: Debian's iptables package ships them all. */
const IPTABLES_TOOL = /^ip6?tables(-legacy|-nft)?(-save|-restore)?$/

/** The Debian package that provides `tool`, when it is one we run. */
export function debianPackageOf(tool: string): string | undefined {
  return IPTABLES_TOOL.test(tool) ? 'iptables' : TOOL_PACKAGES[tool]
}

const DEFAULT_TIMEOUT_MS = 10_000
/** Bound on the stderr quoted in an error message. */
const STDERR_QUOTE_LIMIT = 2000

export interface ToolOptions {
  /** run inside this network namespace (a path such as /var/run/netns/NAME or /proc/PID/ns/net) */
  netns?: string
  input?: string
  timeoutMs?: number
  /** return a non-zero exit instead of throwing */
  allowFailure?: boolean
}

export interface ToolResult {
  exitCode: number
  stderr: string
  stdout: string
}

/** The absolute path of `tool` on $PATH, or a ZT_ERR_TOOL_MISSING error. */
export async function findTool(tool: string): Promise<string> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue
    const candidate = path.join(dir, tool)
    try {
      await access(candidate, fsConstants.X_OK)
      if ((await stat(candidate)).isFile()) return candidate
    } catch {
      // not in this directory
    }
  }

  const pkg = debianPackageOf(tool)
  throw new ZtError('ZT_ERR_TOOL_MISSING', `the tool \`${tool}\` is not installed (not found on PATH)`, {
    details: {package: pkg, tool},
    suggestion: pkg ? `install it: apt-get install ${pkg}` : `install ${tool} and make sure it is on PATH`,
  })
}

/** Whether `tool` is on $PATH. */
export async function hasTool(tool: string): Promise<boolean> {
  try {
    await findTool(tool)
    return true
  } catch {
    return false
  }
}

/** Checks that a netns path exists and is a namespace file, so errors say so instead of nsenter noise. */
export async function assertNetns(netnsPath: string): Promise<void> {
  try {
    await stat(netnsPath)
  } catch {
    throw new ZtError('ZT_ERR_NETNS_NOT_FOUND', `network namespace ${netnsPath} does not exist`, {
      exit: ExitCode.notFound,
      suggestion: 'pass --netns /var/run/netns/NAME (see `ip netns list`) or --pid PID of a process in the pod',
    })
  }
}

/** Run `tool args` (inside `options.netns` through nsenter) with a timeout. */
export async function runTool(tool: string, args: readonly string[], options: ToolOptions = {}): Promise<ToolResult> {
  const toolPath = await findTool(tool)
  let file = toolPath
  let argv = [...args]
  if (options.netns) {
    await assertNetns(options.netns)
    file = await findTool('nsenter')
    argv = [`--net=${options.netns}`, '--', toolPath, ...args]
  }

  const {execa} = await import('execa')
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const result = await execa(file, argv, {
    input: options.input, maxBuffer: 64 * 1024 * 1024, reject: false, stripFinalNewline: false, timeout,
  })
  const where = options.netns ? ` in netns ${options.netns}` : ''
  if (result.timedOut) {
    throw new ZtError('ZT_ERR_TOOL_TIMEOUT', `\`${tool} ${args.join(' ')}\`${where} did not finish within ${timeout} ms`, {
      details: {tool}, suggestion: 'check that the namespace and the tool respond (is another iptables command holding the lock?)',
    })
  }

  const exitCode = result.exitCode ?? 1
  const stdout = String(result.stdout ?? '')
  const stderr = String(result.stderr ?? '')
  if (exitCode !== 0 && !options.allowFailure) {
    const quoted = (stderr.trim() || (result.failed && 'originalMessage' in result ? String(result.originalMessage) : '')).slice(0, STDERR_QUOTE_LIMIT)
    throw new ZtError('ZT_ERR_TOOL_FAILED', `\`${tool} ${args.join(' ')}\`${where} failed (exit ${exitCode}): ${quoted || 'no error output'}`, {
      details: {exitCode, stderr: quoted, tool},
      suggestion: exitCode === 126 || /permission denied|Operation not permitted/i.test(stderr)
        ? 'run as root (entering a network namespace and changing its rules need CAP_SYS_ADMIN and CAP_NET_ADMIN)'
        : 'read the tool\'s message above; `ztctl diag redirect` shows the namespace\'s current state',
    })
  }

  return {exitCode, stderr, stdout}
}

/** Convenience: stdout of a successful run. */
export async function toolOutput(tool: string, args: readonly string[], options: Omit<ToolOptions, 'allowFailure'> = {}): Promise<string> {
  return (await runTool(tool, args, options)).stdout
}

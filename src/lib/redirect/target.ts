// Which network namespace a redirect command works on (--netns PATH or --pid PID), and its addresses.
import {stat} from 'node:fs/promises'

import {ExitCode, ZtError} from '../errors.js'
import {assertNetns, toolOutput} from '../exec/tools.js'
import type {Family} from './rules.js'

export interface NetnsTarget {
  netns?: string
  pid?: number
}

/** The namespace path of a target; exactly one of netns / pid must be given. */
export async function resolveNetnsPath(target: NetnsTarget): Promise<string> {
  if ((target.netns === undefined) === (target.pid === undefined)) {
    throw new ZtError('ZT_ERR_USAGE', 'give exactly one of --netns PATH or --pid PID', {exit: ExitCode.usage, suggestion: 'e.g. --netns /var/run/netns/pod1 or --pid 4242'})
  }

  if (target.pid !== undefined) {
    const netnsPath = `/proc/${target.pid}/ns/net`
    try {
      await stat(netnsPath)
    } catch {
      throw new ZtError('ZT_ERR_NETNS_NOT_FOUND', `no process with PID ${target.pid} (or its network namespace is not visible)`, {
        exit: ExitCode.notFound, suggestion: 'check the PID with `ps -p PID`; run as root to see other users\' processes',
      })
    }

    return netnsPath
  }

  const netnsPath = target.netns!
  if (!netnsPath.startsWith('/')) {
    throw new ZtError('ZT_ERR_USAGE', `--netns needs an absolute path, got ${JSON.stringify(netnsPath)}`, {
      exit: ExitCode.usage, suggestion: `use --netns /var/run/netns/${netnsPath}`,
    })
  }

  await assertNetns(netnsPath)
  return netnsPath
}

/** Device + inode of a netns file: two paths name the same namespace when these match. */
export async function netnsIdentity(netnsPath: string): Promise<string> {
  const info = await stat(netnsPath)
  return `${info.dev}:${info.ino}`
}

interface IpAddrJson {
  ifname?: string
  addr_info?: {family?: string; local?: string; scope?: string}[]
}

/** The global-scope addresses of the namespace (`ip -j addr`), IPv4 first. */
export async function readNetnsAddresses(netnsPath: string): Promise<string[]> {
  const text = await toolOutput('ip', ['-j', 'addr', 'show'], {netns: netnsPath})
  let links: IpAddrJson[]
  try {
    links = JSON.parse(text) as IpAddrJson[]
  } catch {
    throw new ZtError('ZT_ERR_TOOL_FAILED', '`ip -j addr` printed something that is not JSON', {suggestion: 'install a current iproute2 (`ip -j` support)'})
  }

  const addresses = links.flatMap((link) => (link.addr_info ?? []).filter((info) => info.scope === 'global' && info.local).map((info) => ({family: info.family, local: info.local!})))
  return [...addresses.filter((a) => a.family === 'inet'), ...addresses.filter((a) => a.family === 'inet6')].map((a) => a.local)
}

export function familiesOf(ips: readonly string[]): Family[] {
  const families: Family[] = [4]
  if (ips.some((ip) => ip.includes(':'))) families.push(6)
  return families
}

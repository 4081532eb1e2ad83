// What the hub tests share: daemons (`hub run`, `agent run`) in a test node's namespace with their output
// kept, identities created and enrolled into files, a node that accepts nothing in, an agent's
// /config_dump through its admin Unix socket.
import assert from 'node:assert/strict'
import type {ChildProcess} from 'node:child_process'
import path from 'node:path'

import {RUN_JS, type TestController} from '../helpers/controller.js'
import type {Topology, TopoNode} from '../helpers/netns.js'

export async function ok(ctl: TestController, args: string[]): Promise<string> {
  const result = await ctl.run(args)
  assert.equal(result.code, 0, `ztctl ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`)
  return result.stdout
}

/** Create and enroll each [NAME, ROLE] into DIR/NAME.json (ROLE '': a plain user). */
export async function enrollAll(ctl: TestController, dir: string, identities: [string, string][]): Promise<void> {
  for (const [name, role] of identities) {
    await ok(ctl, ['identity', 'create', name, ...(role ? ['-a', role] : []), '--out', path.join(dir, `${name}.jwt`)])
    await ok(ctl, ['enroll', path.join(dir, `${name}.jwt`), '--out', path.join(dir, `${name}.json`)])
  }
}

export interface Daemon {
  child: ChildProcess
  lines(): Record<string, unknown>[]
  output(): string
}

export function daemon(topo: Topology, netns: string, args: string[]): Daemon {
  const child = topo.spawn(netns, process.execPath, [RUN_JS, ...args])
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  return {
    child,
    lines: () => output.split('\n').flatMap((line) => {
      try {
        return line.startsWith('{') ? [JSON.parse(line) as Record<string, unknown>] : []
      } catch {
        return []
      }
    }),
    output: () => output,
  }
}

export async function stop(process_: Daemon, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const {child} = process_
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill(signal)
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

/** Accept nothing in: INPUT drops all but loopback and replies to what the node itself opened. */
export async function lockDown(topo: Topology, node: TopoNode): Promise<void> {
  for (const rule of [['-A', 'INPUT', '-i', 'lo', '-j', 'ACCEPT'], ['-A', 'INPUT', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'], ['-P', 'INPUT', 'DROP']]) {
    await topo.execOk(node.netns, 'iptables', rule)
  }
}

/** An agent's /config_dump through its admin Unix socket (reachable from the host: it is a file). */
export async function dump(socket: string): Promise<{hubs: {hub?: string; state: string}[]; inbound: {service: string; udp?: {dropped: number; peakBuffered: number}}[]; proxy?: {address?: string}; ready: boolean}> {
  const {execFile} = await import('node:child_process')
  const text = await new Promise<string>((resolve, reject) => {
    execFile('curl', ['-s', '--max-time', '3', '--unix-socket', socket, 'http://agent/config_dump'], (error, stdout) => (error ? reject(error) : resolve(stdout)))
  })
  return JSON.parse(text)
}


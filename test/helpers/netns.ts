// Root test topologies built from network namespaces: "nodes" and "pods", as a Kubernetes node would
// have them, with no container runtime. Every name is unique per run; everything is torn down with
// t.after and, as a safety net, on process 'exit' (also after a failed assertion).
//
//   hasRoot()                                   // fails the test with a clear message unless uid 0
//   const topo = await createTopology(t, {nodes: 2, podsPerNode: 2, ipv6: false})
//   topo.id                  // unique run id, e.g. 'zt1k2f9a3c' (prefix of every netns name)
//   topo.subnet              // the per-run IPv4 /24, e.g. '10.147.23.0/24' (exists only inside our netns)
//   topo.nodes[0]            // {name, netns, netnsPath, bridge: 'br0', bridgeIp, bridgeIp6?, cidr, cidr6?, links, pods}
//   topo.nodes[0].links[0]   // {ifname: 't1', peer: 1, ip, peerIp} — the node↔node veth (capture here:
//                            //   `topo.exec(node.netns, 'tshark', ['-i', link.ifname, ...])`)
//   topo.pods[0]             // {name, node: 0, netns, netnsPath, ifname: 'eth0', ip, ip6?, gateway}
//   await topo.exec(pod.netns, 'curl', ['-s', 'http://10.1.2.3/'])   // → {code, stdout, stderr}; throws only when curl is not installed
//   await topo.execOk(pod.netns, 'ip', ['addr'])                      // throws when the exit code is not 0
//   const child = topo.spawn(pod.netns, 'socat', [...])               // ChildProcess, SIGKILLed at teardown
//   (exec, execOk and spawn throw at once, naming the Debian package, when the command is not installed)
//   const extra = await topo.addNetns('extra')                        // a bare netns (lo up) torn down with the rest
//   await topo.teardown()                                            // idempotent; t.after calls it for you
//
// Layout: node i owns 10.X.Y.(32*i)/27 — bridge `br0` at .(32*i+1), pod j at .(32*i+2+j) on `eth0`
// with a default route via the bridge. Nodes are joined pairwise by veth pairs (`t<peer index+1>` in
// each node) addressed from 10.X.Y.192/26 (/30 each), with routes to each other's pod /27, and forward
// IPv4 (and IPv6). With ipv6: pods also get fd7a:X:Y:i::(2+j)/64, nodes fd7a:X:Y:i::1, links fd7a:X:Y:ffNN::/64.
// Limits: 1–4 nodes, 1–29 pods per node. Node and pod netns are named `<id>-n<i>` and `<id>-n<i>p<j>`
// (1-based in names, 0-based in arrays). Netns paths are `/var/run/netns/<name>`.
import assert from 'node:assert/strict'
import {type ChildProcess, execFile, execFileSync, spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'

import {requireTools} from './tools.js'

const NETNS_DIR = '/var/run/netns'
const EXEC_TIMEOUT_MS = 30_000

export interface TopologySpec {
  nodes: number
  podsPerNode: number
  /** also assign IPv6 ULA addresses (pods, bridges, links) */
  ipv6?: boolean
}

export interface ExecResult {
  code: number
  stderr: string
  stdout: string
}

export interface NodeLink {
  /** interface name inside this node's netns */
  ifname: string
  /** index of the node at the other end */
  peer: number
  ip: string
  peerIp: string
}

export interface TopoNode {
  bridge: string
  bridgeIp: string
  bridgeIp6?: string
  cidr: string
  cidr6?: string
  index: number
  links: NodeLink[]
  name: string
  netns: string
  netnsPath: string
  pods: TopoPod[]
}

export interface TopoPod {
  gateway: string
  ifname: string
  index: number
  ip: string
  ip6?: string
  name: string
  netns: string
  netnsPath: string
  /** index of the node this pod lives on */
  node: number
}

export interface Topology {
  id: string
  nodes: TopoNode[]
  pods: TopoPod[]
  subnet: string
  addNetns(label: string): Promise<{name: string; netnsPath: string}>
  exec(netns: string, cmd: string, args?: string[], options?: {input?: string; timeoutMs?: number}): Promise<ExecResult>
  execOk(netns: string, cmd: string, args?: string[], options?: {input?: string; timeoutMs?: number}): Promise<string>
  spawn(netns: string, cmd: string, args?: string[]): ChildProcess
  teardown(): Promise<void>
}

interface TestContextLike {
  after(fn: () => Promise<void> | void): void
}

/** Fails (throws an assertion error) with a clear message when the tests do not run as root. */
export function hasRoot(): true {
  const uid = process.getuid?.()
  assert.equal(uid, 0, `this test needs root (network namespaces, iptables); running as uid ${uid}. Run the root tests with sudo.`)
  return true
}

/** RFC 5952 form ('fd7a:1:2:0::2' → 'fd7a:1:2::2'), as `ip` prints it. */
function canonicalIpv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1)
}

let runCounter = 0
/** Netns names created by this process and not yet deleted: the 'exit' safety net removes them. */
const liveNetns = new Set<string>()
const liveChildren = new Set<ChildProcess>()
let exitHookInstalled = false

function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const child of liveChildren) child.kill('SIGKILL')
    for (const name of liveNetns) {
      try {
        execFileSync('ip', ['netns', 'del', name], {stdio: 'ignore', timeout: 5000})
      } catch {
        // already gone
      }
    }
  })
}

/** Run a command (in a netns when `netns` is given); never throws, bounded by a timeout. */
export function run(cmd: string, args: string[], options: {input?: string; netns?: string; timeoutMs?: number} = {}): Promise<ExecResult> {
  const [file, argv] = options.netns ? ['ip', ['netns', 'exec', options.netns, cmd, ...args]] : [cmd, args]
  return new Promise((resolve) => {
    const child = execFile(file, argv, {encoding: 'utf8', maxBuffer: 16 * 1024 * 1024, timeout: options.timeoutMs ?? EXEC_TIMEOUT_MS}, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0
      resolve({code, stderr: stderr + (error && typeof error.code !== 'number' ? `\n${error.message}` : ''), stdout})
    })
    // A command that exits before reading its input (e.g. a refused connection) makes the write fail with EPIPE: its exit code says what happened.
    child.stdin!.on('error', () => {})
    if (options.input !== undefined) child.stdin!.end(options.input)
  })
}

async function runOk(cmd: string, args: string[], options: {input?: string; netns?: string; timeoutMs?: number} = {}): Promise<string> {
  const result = await run(cmd, args, options)
  if (result.code !== 0) {
    throw new Error(`${options.netns ? `[netns ${options.netns}] ` : ''}${cmd} ${args.join(' ')} failed (exit ${result.code}): ${result.stderr.trim()}`)
  }

  return result.stdout
}

async function createNetns(name: string): Promise<string> {
  installExitHook()
  await runOk('ip', ['netns', 'add', name])
  liveNetns.add(name)
  await runOk('ip', ['-n', name, 'link', 'set', 'lo', 'up'])
  return `${NETNS_DIR}/${name}`
}

async function deleteNetns(name: string): Promise<void> {
  if (!liveNetns.has(name)) return
  await run('ip', ['netns', 'del', name])
  liveNetns.delete(name)
}

export async function createTopology(t: TestContextLike, spec: TopologySpec): Promise<Topology> {
  hasRoot()
  requireTools('ip', 'sysctl')
  assert.ok(spec.nodes >= 1 && spec.nodes <= 4, 'createTopology: 1 to 4 nodes')
  assert.ok(spec.podsPerNode >= 1 && spec.podsPerNode <= 29, 'createTopology: 1 to 29 pods per node')
  const id = `zt${process.pid.toString(36)}${(runCounter++).toString(36)}${randomBytes(2).toString('hex')}`
  const [octetX, octetY] = randomBytes(2)
  const base = `10.${octetX}.${octetY}`
  const base6 = `fd7a:${octetX.toString(16)}:${octetY.toString(16)}`
  const owned: string[] = []
  const children = new Set<ChildProcess>()
  let tornDown = false

  const teardown = async (): Promise<void> => {
    if (tornDown) return
    tornDown = true
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      liveChildren.delete(child)
    }

    for (const name of owned.reverse()) await deleteNetns(name)
  }

  // Registered before anything is created, so a failure half-way still cleans up.
  t.after(teardown)

  const track = async (name: string): Promise<string> => {
    owned.push(name)
    return createNetns(name)
  }

  const nodes: TopoNode[] = []
  const pods: TopoPod[] = []
  for (let i = 0; i < spec.nodes; i++) {
    const name = `${id}-n${i + 1}`
    const netnsPath = await track(name)
    const bridgeIp = `${base}.${32 * i + 1}`
    const node: TopoNode = {
      bridge: 'br0', bridgeIp, cidr: `${base}.${32 * i}/27`, index: i, links: [], name, netns: name, netnsPath, pods: [],
      ...(spec.ipv6 ? {bridgeIp6: canonicalIpv6(`${base6}:${i}::1`), cidr6: `${canonicalIpv6(`${base6}:${i}::`)}/64`} : {}),
    }
    await runOk('ip', ['-n', name, 'link', 'add', 'br0', 'type', 'bridge'])
    await runOk('ip', ['-n', name, 'addr', 'add', `${bridgeIp}/27`, 'dev', 'br0'])
    if (spec.ipv6) await runOk('ip', ['-n', name, 'addr', 'add', `${node.bridgeIp6}/64`, 'dev', 'br0', 'nodad'])
    await runOk('ip', ['-n', name, 'link', 'set', 'br0', 'up'])
    await runOk('sysctl', ['-qw', 'net.ipv4.ip_forward=1'], {netns: name})
    if (spec.ipv6) await runOk('sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1'], {netns: name})

    for (let j = 0; j < spec.podsPerNode; j++) {
      const podName = `${name}p${j + 1}`
      const podPath = await track(podName)
      const pod: TopoPod = {
        gateway: bridgeIp, ifname: 'eth0', index: pods.length, ip: `${base}.${32 * i + 2 + j}`, name: podName, netns: podName, netnsPath: podPath, node: i,
        ...(spec.ipv6 ? {ip6: canonicalIpv6(`${base6}:${i}::${(2 + j).toString(16)}`)} : {}),
      }
      // Created inside the node netns with the peer directly in the pod: no names in the host netns.
      await runOk('ip', ['-n', name, 'link', 'add', `vp${j + 1}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', podName])
      await runOk('ip', ['-n', name, 'link', 'set', `vp${j + 1}`, 'master', 'br0', 'up'])
      await runOk('ip', ['-n', podName, 'addr', 'add', `${pod.ip}/27`, 'dev', 'eth0'])
      if (spec.ipv6) await runOk('ip', ['-n', podName, 'addr', 'add', `${pod.ip6}/64`, 'dev', 'eth0', 'nodad'])
      await runOk('ip', ['-n', podName, 'link', 'set', 'eth0', 'up'])
      await runOk('ip', ['-n', podName, 'route', 'add', 'default', 'via', bridgeIp])
      if (spec.ipv6) await runOk('ip', ['-n', podName, '-6', 'route', 'add', 'default', 'via', node.bridgeIp6!])
      node.pods.push(pod)
      pods.push(pod)
    }

    nodes.push(node)
  }

  // Full mesh of node↔node veth pairs, one /30 each from .192/26.
  let linkIndex = 0
  for (let a = 0; a < nodes.length; a++) {
    for (let b = a + 1; b < nodes.length; b++) {
      const ipA = `${base}.${192 + 4 * linkIndex + 1}`
      const ipB = `${base}.${192 + 4 * linkIndex + 2}`
      const nodeA = nodes[a]!
      const nodeB = nodes[b]!
      const ifA = `t${b + 1}`
      const ifB = `t${a + 1}`
      await runOk('ip', ['-n', nodeA.netns, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nodeB.netns])
      for (const [node, ifname, ip] of [[nodeA, ifA, ipA], [nodeB, ifB, ipB]] as const) {
        await runOk('ip', ['-n', node.netns, 'addr', 'add', `${ip}/30`, 'dev', ifname])
        if (spec.ipv6) {
          const suffix = node === nodeA ? 1 : 2
          await runOk('ip', ['-n', node.netns, 'addr', 'add', `${base6}:ff${linkIndex.toString(16).padStart(2, '0')}::${suffix}/64`, 'dev', ifname, 'nodad'])
        }

        await runOk('ip', ['-n', node.netns, 'link', 'set', ifname, 'up'])
      }

      await runOk('ip', ['-n', nodeA.netns, 'route', 'add', nodeB.cidr, 'via', ipB])
      await runOk('ip', ['-n', nodeB.netns, 'route', 'add', nodeA.cidr, 'via', ipA])
      if (spec.ipv6) {
        const link6 = `${base6}:ff${linkIndex.toString(16).padStart(2, '0')}`
        await runOk('ip', ['-n', nodeA.netns, '-6', 'route', 'add', nodeB.cidr6!, 'via', `${link6}::2`])
        await runOk('ip', ['-n', nodeB.netns, '-6', 'route', 'add', nodeA.cidr6!, 'via', `${link6}::1`])
      }

      nodeA.links.push({ifname: ifA, ip: ipA, peer: b, peerIp: ipB})
      nodeB.links.push({ifname: ifB, ip: ipB, peer: a, peerIp: ipA})
      linkIndex++
    }
  }

  const topology: Topology = {
    async addNetns(label) {
      assert.match(label, /^[a-z0-9]{1,12}$/, 'addNetns: a short lowercase label')
      const name = `${id}-${label}`
      return {name, netnsPath: await track(name)}
    },
    exec: async (netns, cmd, args = [], options = {}) => {
      requireTools(cmd)
      return run(cmd, args, {...options, netns})
    },
    execOk: async (netns, cmd, args = [], options = {}) => {
      requireTools(cmd)
      return runOk(cmd, args, {...options, netns})
    },
    id,
    nodes,
    pods,
    spawn(netns, cmd, args = []) {
      requireTools(cmd)
      const child = spawn('ip', ['netns', 'exec', netns, cmd, ...args], {stdio: ['ignore', 'pipe', 'pipe']})
      children.add(child)
      liveChildren.add(child)
      child.once('exit', () => liveChildren.delete(child))
      return child
    },
    subnet: `${base}.0/24`,
    teardown,
  }
  return topology
}

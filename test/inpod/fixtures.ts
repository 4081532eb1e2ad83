// Shared pieces of the in-pod root tests: apps listening inside pod netns, clients dialling from
// inside a pod (unmarked, like any app), the in-pod rules in miniature, and a CNI-protocol client.
import assert from 'node:assert/strict'
import type {ChildProcess} from 'node:child_process'
import {once} from 'node:events'
import net from 'node:net'
import path from 'node:path'
import type {TestContext} from 'node:test'

import {type ConfigSnapshot, emptySnapshot, type Policy, type WorkloadRecord} from '../../src/lib/config/types.js'

import {listenTcp, tcpSocket} from '../../src/lib/netns/native.js'
import {type InpodAck, type InpodMessage, InpodLineParser, type InpodRequest, encodeInpodMessage} from '../../src/lib/inpod/protocol.js'
import {RUN_JS} from '../helpers/controller.js'
import type {Topology, TopoNode, TopoPod} from '../helpers/netns.js'
import {waitUntil} from '../helpers/wait.js'
import {createMesh, type Mesh, type RunningAgent, startAgent, tempDir, TRUST_DOMAIN, waitFor} from '../proxy/helpers.js'

export {waitUntil}

/**
 * The in-pod engine the root tests' agents use: native (the default) or, with ZTCTL_TEST_DATA_PATH=node,
 * the node:http2 fallback (mesh.test.ts runs both itself).
 */
export const INPOD_TEST_DATA_PATH: 'native' | 'node' = process.env.ZTCTL_TEST_DATA_PATH === 'node' ? 'node' : 'native'

export interface NodeAgent {
  child: ChildProcess
  output: () => string
}

/** `identity create` flags scoping a node identity to the pods of NODE: their namespace, the node's pod CIDRs. */
export function nodeScopeFlags(node: TopoNode, namespace = 'default'): string[] {
  return ['--serves', `${namespace}/*`, '--pod-cidr', node.cidr, ...(node.cidr6 ? ['--pod-cidr', node.cidr6] : [])]
}

/** Whether something accepts connections on the unix socket at PATH. */
function unixSocketServed(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socketPath, () => {
      probe.destroy()
      resolve(true)
    })
    probe.on('error', () => resolve(false))
  })
}

/**
 * `ztctl agent run --inpod-socket` inside NODE's netns (a controller-enrolled identity), once its CNI socket is
 * served. LOG_LEVEL 'info' (the tests') keeps its output, access logs included; a bench passes 'warn'.
 */
export async function startNodeAgent(topo: Topology, node: TopoNode, files: {identity: string; socket: string; stateDir: string}, logLevel: 'info' | 'warn' = 'info'): Promise<NodeAgent> {
  const child = topo.spawn(node.netns, process.execPath, [RUN_JS, 'agent', 'run', '-i', files.identity, '--hbone', `${node.bridgeIp}:15008`,
    '--admin', '127.0.0.1:15000', '--metrics', '127.0.0.1:0', '--readiness', '127.0.0.1:0', '--inpod-socket', files.socket, '--inpod-state-dir', files.stateDir, '--log-level', logLevel, '--data-path', INPOD_TEST_DATA_PATH])
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const serving = logLevel === 'info' ? async () => output.includes('"component":"inpod"') && output.includes('listener established') : () => unixSocketServed(files.socket)
  await waitUntil(`node agent in ${node.name} serving the CNI socket`, serving, 30_000)
  return {child, output: () => output}
}

/** SIGTERM, then SIGKILL after 15 s; resolves once the process is gone. */
export async function stopNodeAgent(agent: NodeAgent): Promise<void> {
  const {child} = agent
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
  await exited
  clearTimeout(timer)
}

/** An app inside POD on PORT that answers every connection with `<name> saw <remote address>` and closes. */
export async function podApp(t: {after(fn: () => void): void}, pod: TopoPod, port: number, name = pod.name): Promise<net.Server> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {})
    socket.end(`${name} saw ${socket.remoteAddress}`)
  })
  t.after(() => server.close())
  await new Promise<void>((resolve) => server.listen({fd: listenTcp('0.0.0.0', port, {netns: pod.netnsPath})}, resolve))
  return server
}

/** Connect from inside POD as an ordinary app (no mark) and read until the peer closes. */
export async function podFetch(pod: TopoPod, host: string, port: number, timeoutMs = 5000): Promise<string> {
  const socket = new net.Socket({fd: tcpSocket(net.isIPv6(host) ? 6 : 4, {netns: pod.netnsPath})})
  const timer = setTimeout(() => socket.destroy(new Error(`timed out reading from ${host}:${port}`)), timeoutMs)
  try {
    socket.connect(port, host)
    const chunks: Buffer[] = []
    for await (const chunk of socket) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks).toString()
  } finally {
    clearTimeout(timer)
    socket.destroy()
  }
}

/** Istio's in-pod nat rules (REDIRECT mode, no DNS), as in /tmp/inpod-ref.md §3.2, with our chain names. */
export const INPOD_NAT_RULES = `*nat
:ZTCTL_PRERT - [0:0]
:ZTCTL_OUTPUT - [0:0]
-A PREROUTING -j ZTCTL_PRERT
-A OUTPUT -j ZTCTL_OUTPUT
-A ZTCTL_PRERT ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006
-A ZTCTL_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT
-A ZTCTL_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT
-A ZTCTL_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001
COMMIT
`

export async function redirectPod(topo: Topology, pod: TopoPod): Promise<void> {
  await topo.execOk(pod.netns, 'iptables-restore', ['--noflush'], {input: INPOD_NAT_RULES})
}

/** How many packets the outbound REDIRECT rule of POD has matched. */
export async function outboundRedirectPackets(topo: Topology, pod: TopoPod): Promise<number> {
  const listing = await topo.execOk(pod.netns, 'iptables', ['-t', 'nat', '-L', 'ZTCTL_OUTPUT', '-v', '-x', '-n'])
  const line = listing.split('\n').find((row) => row.includes('redir ports 15001'))
  return Number(line?.trim().split(/\s+/)[0] ?? 0)
}

/** A CNI-protocol client: connects, checks the hello, sends requests one at a time. */
export class CniClient {
  private readonly parser = new InpodLineParser()
  private readonly inbox: InpodMessage[] = []
  private waiter?: () => void
  readonly socket: net.Socket
  closed = false

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.inbox.push(...this.parser.push(chunk))
      this.waiter?.()
    })
    socket.on('close', () => {
      this.closed = true
      this.waiter?.()
    })
    socket.on('error', () => {})
  }

  static async connect(socketPath: string): Promise<CniClient> {
    const socket = net.connect(socketPath)
    await once(socket, 'connect')
    return new CniClient(socket)
  }

  async next(timeoutMs = 10_000): Promise<InpodMessage | undefined> {
    const deadline = Date.now() + timeoutMs
    while (this.inbox.length === 0 && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        this.waiter = resolve
        setTimeout(resolve, 50).unref()
      })
    }

    return this.inbox.shift()
  }

  async request(message: InpodRequest): Promise<InpodAck> {
    this.socket.write(encodeInpodMessage(message))
    const reply = await this.next()
    if (reply?.type !== 'ack') throw new Error(`expected an ack, got ${JSON.stringify(reply)}`)
    return reply
  }

  close(): void {
    this.socket.destroy()
  }
}

/** The pods' service accounts by index on their node (as mesh.test.ts has them). */
export const POD_SERVICE_ACCOUNT: Record<number, string> = {0: 'web', 1: 'api', 2: 'db', 3: 'other'}

export type IssueRequest = {csr: string; namespace: string; serviceAccount: string}
export type Issued = {ca: string; cert: string; spiffe: string}

export interface InpodMeshNodes {
  config(policies?: Policy[]): ConfigSnapshot
  /** SPIFFE IDs of the certificates issued, in order */
  issued: string[]
  mesh: Mesh
  nodes: (RunningAgent & {cni: CniClient})[]
  record(pod: TopoPod): WorkloadRecord
}

/**
 * Two in-process node agents on DATA_PATH, the MESH_PODS added over the CNI socket and redirected; workload
 * certificates from a real CA, through BEFORE_ISSUE (which may delay or fail a request) when given.
 */
export async function startInpodMesh(t: TestContext, topo: Topology, options: {beforeIssue?: (request: IssueRequest) => Promise<void>; dataPath: 'native' | 'node'; meshPods: TopoPod[]}): Promise<InpodMeshNodes> {
  const dir = await tempDir(t)
  const mesh = await createMesh()
  const issued: string[] = []
  const issueCert = async (request: IssueRequest): Promise<Issued> => {
    await options.beforeIssue?.(request)
    const spiffe = `spiffe://${TRUST_DOMAIN}/ns/${request.namespace}/sa/${request.serviceAccount}`
    issued.push(spiffe)
    const cert = await mesh.signer.signCsr(request.csr, {spiffe, ttlSeconds: 3600})
    return {ca: mesh.signer.ca.certPem, cert: cert.certPem, spiffe}
  }

  const record = (pod: TopoPod): WorkloadRecord => ({
    hbone: '127.0.0.1:1', ips: [pod.ip], name: pod.name, namespace: 'default', node: `node${pod.node + 1}`, serviceAccount: POD_SERVICE_ACCOUNT[pod.index]!, uid: `uid-${pod.name}`,
  })
  const config = (policies: Policy[] = []): ConfigSnapshot => ({
    ...emptySnapshot(),
    policy: Object.fromEntries(policies.map((policy) => [policy.name, policy])),
    workload: Object.fromEntries(options.meshPods.map((pod) => [`uid-${pod.name}`, record(pod)])),
  })
  const {dataPath} = options
  const nodes = await Promise.all([1, 2].map(async (index) => {
    const socketPath = path.join(dir, `node${index}.sock`)
    const running = await startAgent(t, dir, await mesh.identity(`node${index}`), config(), {inpod: {dataPath, issueCert, socketPath, stateDir: path.join(dir, `state${index}`)}})
    assert.equal(running.agent.configDump().config.inpodDataPath, dataPath)
    const cni = await CniClient.connect(socketPath)
    t.after(() => cni.close())
    await cni.next()
    return {...running, cni}
  }))
  for (const pod of options.meshPods) {
    const {uid, name, namespace, serviceAccount} = record(pod)
    const ack = await nodes[pod.node]!.cni.request({type: 'add', uid, workload: {name, namespace, serviceAccount}, netns: pod.netnsPath, ips: [pod.ip]})
    assert.equal(ack.error, undefined)
    await redirectPod(topo, pod)
  }

  return {config, issued, mesh, nodes, record}
}

/** POD's open connections as its own agent's admin dump counts them (undefined: not served there). */
export const connectionsOf = (setup: InpodMeshNodes, pod: TopoPod): number | undefined =>
  setup.nodes[pod.node]!.agent.configDump().workloads.find((workload) => workload.name === pod.name)?.connections

/** Wait until each POD's count (on its own agent) is COUNT. */
export async function expectCounts(setup: InpodMeshNodes, what: string, counts: [TopoPod, number][]): Promise<void> {
  await waitFor(what, () => counts.every(([pod, count]) => connectionsOf(setup, pod) === count)).catch(() => {
    assert.fail(`${what}: ${counts.map(([pod, count]) => `${pod.name} ${connectionsOf(setup, pod)} (want ${count})`).join(', ')}`)
  })
}


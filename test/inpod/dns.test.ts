// Issue 4, in-pod DNS and mesh service names (root): two "nodes" with a controller and one node agent
// each; tcp/web is hosted by node 2's agent and has the intercept name web.mesh. A pod on node 1 is
// redirected with the default DNS capture. Inside it `getent hosts web.mesh` gives the name's stable
// 100.64.0.0/10 address, other names are answered by the pod's own resolver (a real UDP + TCP DNS
// server in node 1's netns, seeing the queries come from the pod's address), and curl to web.mesh:80
// reaches the service over HBONE with the pod's identity, which node 2's policies judge.
import assert from 'node:assert/strict'
import {createSocket} from 'node:dgram'
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test, type TestContext} from 'node:test'

import {bindUdp, listenTcp, tcpSocket} from '../../src/lib/netns/native.js'
import {trustDomainOf} from '../../src/lib/pki/cert-info.js'
import {allocateInterceptAddresses} from '../../src/lib/sidecar/addresses.js'
import {FrameReader, frame} from '../../src/lib/sidecar/dns.js'
import {buildQuery, buildResponse, parseQuery, parseResponse, QCLASS_IN, QTYPE, RCODE} from '../../src/lib/sidecar/dns-wire.js'
import {runCli, startTestController, type TestController} from '../helpers/controller.js'
import {createTopology, hasRoot, type TopoNode, type TopoPod} from '../helpers/netns.js'
import {requireTools} from '../helpers/tools.js'
import {type NodeAgent, nodeScopeFlags, startNodeAgent, stopNodeAgent, waitUntil} from './fixtures.js'

const UPSTREAM_ANSWER = '192.0.2.7'
const SERVICE_PORT = 8080

/** The pod's own resolver: answers every A question with UPSTREAM_ANSWER over UDP and TCP, noting who asked. */
async function startUpstreamDns(t: TestContext, node: TopoNode): Promise<{queries: {from: string; name: string; transport: string}[]}> {
  const queries: {from: string; name: string; transport: string}[] = []
  const answer = (message: Buffer, from: string, transport: string): Buffer | undefined => {
    const parsed = parseQuery(message)
    if (!parsed.ok) return undefined
    queries.push({from, name: parsed.query.question.name, transport})
    const wantsA = parsed.query.question.qtype === QTYPE.a
    return buildResponse(parsed.query, {addresses: wantsA ? [UPSTREAM_ANSWER] : [], rcode: RCODE.noError})
  }

  const udp = createSocket('udp4')
  t.after(() => udp.close())
  udp.on('message', (message, remote) => {
    const response = answer(message, remote.address, 'udp')
    if (response) udp.send(response, remote.port, remote.address)
  })
  await new Promise<void>((resolve) => udp.bind({fd: bindUdp(node.bridgeIp, 53, {netns: node.netnsPath})}, resolve))
  const tcp = net.createServer((socket) => {
    socket.on('error', () => {})
    const reader = new FrameReader((message) => {
      const response = answer(message, socket.remoteAddress ?? '', 'tcp')
      if (response) socket.write(frame(response))
    })
    socket.on('data', (chunk: Buffer) => reader.push(chunk))
  })
  t.after(() => tcp.close())
  await new Promise<void>((resolve) => tcp.listen({fd: listenTcp(node.bridgeIp, 53, {netns: node.netnsPath})}, resolve))
  return {queries}
}

/** A DNS question over TCP from inside POD, as an app would ask it (no mark: the rules capture it). */
async function podTcpQuery(pod: TopoPod, server: string, name: string): Promise<{addresses: string[]; rcode: number}> {
  const socket = new net.Socket({fd: tcpSocket(4, {netns: pod.netnsPath})})
  try {
    const response = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no TCP DNS answer for ${name}`)), 5000)
      const reader = new FrameReader((message) => {
        clearTimeout(timer)
        resolve(Buffer.from(message))
      })
      socket.on('data', (chunk: Buffer) => reader.push(chunk))
      socket.on('error', reject)
      socket.connect(53, server, () => socket.write(frame(buildQuery(0x4242, {name, qclass: QCLASS_IN, qtype: QTYPE.a}))))
    })
    const parsed = parseResponse(response)
    assert.ok(parsed, `a DNS response for ${name}`)
    return {addresses: parsed.addresses, rcode: parsed.rcode}
  } finally {
    socket.destroy()
  }
}

async function ok(ctl: TestController, args: string[]): Promise<string> {
  const result = await ctl.run(args)
  assert.equal(result.code, 0, `ztctl ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`)
  return result.stdout
}

test('a redirected pod resolves mesh names via the agent\'s 15053, other names via its own resolver, and reaches the service over HBONE', async (t) => {
  hasRoot()
  requireTools('curl')
  const topo = await createTopology(t, {nodes: 2, podsPerNode: 1})
  const [node1, node2] = topo.nodes as [TopoNode, TopoNode]
  const [pod] = topo.pods as [TopoPod]
  const dir = await mkdtemp(path.join(tmpdir(), 'ztctl-inpod-dns-'))
  t.after(() => rm(dir, {force: true, recursive: true}))
  const ctl = await startTestController(t, {listenHost: node1.bridgeIp, netns: node1.netns})

  // The pod's resolver lives in node 1's netns; `ip netns exec POD` reads this resolv.conf, and so does the agent.
  const upstream = await startUpstreamDns(t, node1)
  const netnsEtc = `/etc/netns/${pod.netns}`
  await mkdir(netnsEtc, {recursive: true})
  t.after(() => rm(netnsEtc, {force: true, recursive: true}))
  await writeFile(path.join(netnsEtc, 'resolv.conf'), `nameserver ${node1.bridgeIp}\n`)

  const agents: NodeAgent[] = []
  t.after(async () => {
    for (const agent of agents) await stopNodeAgent(agent)
  })
  const files = (node: TopoNode) => ({identity: path.join(dir, `${node.name}.json`), socket: path.join(dir, `${node.name}.sock`), stateDir: path.join(dir, `${node.name}-state`)})
  for (const node of [node1, node2]) {
    const name = `node${node.index + 1}`
    await ok(ctl, ['identity', 'create', name, '-a', 'node', ...nodeScopeFlags(node), '--out', path.join(dir, `${name}.jwt`)])
    await ok(ctl, ['enroll', path.join(dir, `${name}.jwt`), '--out', files(node).identity])
    agents.push(await startNodeAgent(topo, node, files(node)))
  }

  // tcp/web: an app in node 2's netns, hosted by node 2's agent, known in the mesh as web.mesh:80.
  const app = net.createServer((socket) => {
    socket.on('error', () => {})
    socket.end(`web saw ${socket.remoteAddress}`)
  })
  t.after(() => app.close())
  await new Promise<void>((resolve) => app.listen({fd: listenTcp('127.0.0.1', SERVICE_PORT, {netns: node2.netnsPath})}, resolve))
  await ok(ctl, ['tunnel', 'open', 'outbound', 'tcp/web', '--agent', 'node2', '--target', `127.0.0.1:${SERVICE_PORT}`])
  await ok(ctl, ['tunnel', 'open', 'inbound', 'tcp/web', '--agent', 'node1', '--intercept', 'web.mesh:80'])
  const webAddress = allocateInterceptAddresses(['web.mesh']).get('web.mesh')!

  const redirected = await runCli(['redirect', 'add', '--netns', pod.netnsPath, '--workload', `default/${pod.name}`, '--service-account', 'web',
    '--agent-socket', files(node1).socket, '--state-dir', files(node1).stateDir, '--json'], ctl.env)
  assert.equal(redirected.code, 0, redirected.stdout + redirected.stderr)
  assert.equal((JSON.parse(redirected.stdout) as {dnsCapture: boolean}).dnsCapture, true, 'DNS capture is the default')
  const listening = await topo.execOk(pod.netns, 'ss', ['-Hnul'])
  assert.match(listening, /127\.0\.0\.1:15053\b/, 'the agent answers DNS inside the pod (UDP)')
  assert.match(await topo.execOk(pod.netns, 'ss', ['-Hntl']), /127\.0\.0\.1:15053\b/, 'and over TCP')

  // A mesh name: its stable 100.64.0.0/10 address, from the agent (the upstream never hears of it).
  const resolved = await waitUntil('web.mesh resolving in the pod', async () => {
    const result = await topo.exec(pod.netns, 'getent', ['hosts', 'web.mesh'])
    return result.code === 0 ? result.stdout : undefined
  })
  assert.match(resolved, new RegExp(`^${webAddress.replaceAll('.', '\\.')}\\s+web\\.mesh`), resolved)
  assert.ok(!upstream.queries.some((query) => query.name === 'web.mesh'), 'mesh names are answered in the pod')

  // Any other name: forwarded to the pod's resolver, from inside the pod (its address, not the node's).
  assert.match(await topo.execOk(pod.netns, 'getent', ['hosts', 'db.example.org']), new RegExp(`^${UPSTREAM_ANSWER.replaceAll('.', '\\.')}\\s+db\\.example\\.org`))
  assert.ok(upstream.queries.some((query) => query.name === 'db.example.org' && query.transport === 'udp' && query.from === pod.ip), JSON.stringify(upstream.queries))

  // The same over TCP, hand-built: captured to the agent's TCP 15053 and, for other names, forwarded over TCP.
  assert.deepEqual(await podTcpQuery(pod, node1.bridgeIp, 'web.mesh'), {addresses: [webAddress], rcode: RCODE.noError})
  assert.deepEqual(await podTcpQuery(pod, node1.bridgeIp, 'big.example.org'), {addresses: [UPSTREAM_ANSWER], rcode: RCODE.noError})
  assert.ok(upstream.queries.some((query) => query.name === 'big.example.org' && query.transport === 'tcp' && query.from === pod.ip), JSON.stringify(upstream.queries))

  // The app connects by name, no proxy setting: 15001 → tcp/web's endpoint on node 2 over HBONE, as the pod's identity.
  const curl = await topo.exec(pod.netns, 'curl', ['-s', '--http0.9', '--max-time', '5', `http://web.mesh:80/`])
  assert.equal(curl.stdout, 'web saw 127.0.0.1', `curl: ${curl.stderr}\n${agents[0]!.output().slice(-3000)}`)
  const {spiffe: nodeSpiffe} = JSON.parse(await readFile(files(node1).identity, 'utf8')) as {spiffe: string}
  const podSpiffe = `spiffe://${trustDomainOf(nodeSpiffe)}/ns/default/sa/web`
  await waitUntil(`node 2 logging ${podSpiffe} as the source of tcp/web`, () => agents[1]!.output().split('\n').some((line) => line.includes('"dst.service":"tcp/web"') && line.includes(`"src.identity":"${podSpiffe}"`)))

  // Node 2 applies its policies to the pod's service account.
  await ok(ctl, ['policy', 'create', 'deny-web-sa', '--action', 'DENY', '--from', 'sa:default/web', '--service', 'tcp/web'])
  await waitUntil('the DENY policy refusing the pod', async () => (await topo.exec(pod.netns, 'curl', ['-s', '--http0.9', '--max-time', '3', 'http://web.mesh:80/'])).stdout === '')
  // The refusal's log line is written asynchronously: wait for it rather than read the output once.
  await waitUntil('node 2 logging the policy rejection', () => /policy rejection: denied by policy \\"deny-web-sa\\"/.test(agents[1]!.output()))
  await ok(ctl, ['policy', 'delete', 'deny-web-sa'])
  await waitUntil('the pod allowed again', async () => (await topo.exec(pod.netns, 'curl', ['-s', '--http0.9', '--max-time', '3', 'http://web.mesh:80/'])).stdout === 'web saw 127.0.0.1')
})

test('redirect add --no-dns-capture leaves DNS alone (no 15053 rules, no raw table), and the cache says so', async (t) => {
  hasRoot()
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 1})
  const [pod] = topo.pods as [TopoPod]
  const dir = await mkdtemp(path.join(tmpdir(), 'ztctl-inpod-nodns-'))
  t.after(() => rm(dir, {force: true, recursive: true}))
  const added = await runCli(['redirect', 'add', '--netns', pod.netnsPath, '--workload', 'default/batch-0', '--service-account', 'batch', '--no-dns-capture',
    '--state-dir', dir, '--agent-socket', path.join(dir, 'none.sock'), '--json'], process.env)
  assert.equal(added.code, 0, added.stdout + added.stderr)
  const rules = await topo.execOk(pod.netns, 'iptables-save')
  assert.match(rules, /REDIRECT --to-ports 15001/)
  assert.doesNotMatch(rules, /15053|\*raw/)
  const listed = await runCli(['redirect', 'list', '--state-dir', dir, '--json'], process.env)
  assert.equal(listed.code, 0, listed.stdout + listed.stderr)
  assert.deepEqual((JSON.parse(listed.stdout) as {dnsCapture: boolean; name: string}[]).map((row) => [row.name, row.dnsCapture]), [['batch-0', false]])
})

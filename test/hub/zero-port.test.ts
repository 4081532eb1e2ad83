// Issue 15 end to end (root): three "nodes" from network namespaces. Node 1 runs the controller and two
// hubs. Nodes 2 and 3 each run an agent started with --no-listen and --hub (twice), behind a firewall
// that accepts nothing in (INPUT DROP but for loopback and replies): they serve and reach services
// through the hubs only. Checked: no listening port on node 2; a capture at the hubs' host sees TLS only
// and the destination's peer is the source agent's certificate (inner TLS end to end); killing one hub,
// new connections go through the other within 5 s and nothing is corrupted, and a returning hub is
// used again; curl --socks5-hostname and curl -x reach a web server in a pod on node 2 through the proxy
// on node 3, a target outside the allowlist is refused in words, garbage on the proxy port hurts
// nothing; dig gets an answer from dnsmasq (in a pod, no upstream) through a udp/ tunnel, and a flood
// stays within the buffer bound; hub status and proxy-status show the attachments.
import assert from 'node:assert/strict'
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {createServer as createHttpServer} from 'node:http'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test, type TestContext} from 'node:test'
import {fileURLToPath} from 'node:url'

import {listenTcp} from '../../src/lib/netns/native.js'
import {startCapture} from '../helpers/capture.js'
import {RUN_JS, startTestController} from '../helpers/controller.js'
import {createTopology, type Topology, type TopoNode, type TopoPod} from '../helpers/netns.js'
import {waitUntil} from '../inpod/fixtures.js'
import {type Daemon, daemon, dump, enrollAll, lockDown, ok, stop} from './helpers.js'

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures')
const TRUST_DOMAIN = 'cluster.local'
const MARKER = 'ZTCTL-PLAINTEXT-MARKER-'
const HUB_PORTS = [15_009, 15_019]
const HUB_ADMIN = [15_010, 15_020]

/** A TCP echo and an HTTP server inside POD (sockets made in its namespace). */
async function podServers(t: TestContext, pod: TopoPod): Promise<void> {
  const echo = net.createServer({allowHalfOpen: true}, (socket) => {
    socket.on('error', () => {})
    socket.pipe(socket)
  })
  const web = createHttpServer((request, response) => response.end(`web in ${pod.name}: ${request.method} ${request.url} host=${request.headers.host}`))
  t.after(() => {
    echo.close()
    web.closeAllConnections()
    web.close()
  })
  await new Promise<void>((resolve) => echo.listen({fd: listenTcp('0.0.0.0', 7007, {netns: pod.netnsPath})}, resolve))
  await new Promise<void>((resolve) => web.listen({fd: listenTcp('0.0.0.0', 8080, {netns: pod.netnsPath})}, resolve))
}

async function echoThrough(topo: Topology, netns: string, port: number, bytes: number, marker?: string): Promise<{error?: string; ok: boolean; same?: boolean}> {
  const result = await topo.exec(netns, process.execPath, [path.join(FIXTURES, 'echo-client.mjs'), '127.0.0.1', String(port), String(bytes), ...(marker ? [marker] : [])], {timeoutMs: 40_000})
  try {
    return JSON.parse(result.stdout) as {ok: boolean; same?: boolean}
  } catch {
    return {error: result.stderr || result.stdout, ok: false}
  }
}

test('zero-port agents behind a closed firewall serve and reach services through two hubs; proxy and UDP through them too', async (t: TestContext) => {
  const topo = await createTopology(t, {nodes: 3, podsPerNode: 2})
  const [node1, node2, node3] = topo.nodes as [TopoNode, TopoNode, TopoNode]
  const [, , n2p1, n2p2, n3p1] = topo.pods as [TopoPod, TopoPod, TopoPod, TopoPod, TopoPod, TopoPod]
  const dir = await mkdtemp(path.join(tmpdir(), 'ztctl-zero-port-'))
  t.after(() => rm(dir, {force: true, recursive: true}))
  // Names the exit resolves (node 2's own hosts file: `ip netns exec` mounts /etc/netns/NAME/hosts).
  const hostsDir = `/etc/netns/${node2.netns}`
  await mkdir(hostsDir, {recursive: true})
  t.after(() => rm(hostsDir, {force: true, recursive: true}))
  await writeFile(path.join(hostsDir, 'hosts'), `127.0.0.1 localhost\n${n2p1.ip} web.svc.test\n`)

  const ctl = await startTestController(t, {listenHost: node1.bridgeIp, netns: node1.netns})
  await enrollAll(ctl, dir, [['hub-1', 'hub'], ['hub-2', 'hub'], ['agent-a', 'agent'], ['agent-b', 'agent']])

  // Two hubs on node 1; the agents dial them over their links.
  const startHub = (index: number): Daemon => daemon(topo, node1.netns, ['hub', 'run', '-i', path.join(dir, `hub-${index + 1}.json`), '--listen', `0.0.0.0:${HUB_PORTS[index]}`,
    '--admin', `127.0.0.1:${HUB_ADMIN[index]}`, '--ready-file', path.join(dir, `hub-${index + 1}.ready`)])
  const hubs = [startHub(0), startHub(1)]
  t.after(async () => {
    for (const hub of hubs) await stop(hub, 'SIGKILL')
  })
  for (const index of [0, 1]) await waitUntil(`hub-${index + 1} ready`, () => readFile(path.join(dir, `hub-${index + 1}.ready`), 'utf8').catch(() => undefined), 30_000).catch((error: Error) => assert.fail(`${error.message}: ${hubs[index]!.output()}`))

  const hubFlags = (node: TopoNode): string[] => HUB_PORTS.flatMap((port) => ['--hub', `${node.links.find((link) => link.peer === 0)!.peerIp}:${port}`])
  const sockets = {a: path.join(dir, 'a.sock'), b: path.join(dir, 'b.sock')}
  await lockDown(topo, node2)
  await lockDown(topo, node3)
  const agentB = daemon(topo, node2.netns, ['agent', 'run', '-i', path.join(dir, 'agent-b.json'), '--no-listen', ...hubFlags(node2), '--admin', `unix:${sockets.b}`, '--log-level', 'info'])
  const agentA = daemon(topo, node3.netns, ['agent', 'run', '-i', path.join(dir, 'agent-a.json'), '--no-listen', ...hubFlags(node3), '--admin', `unix:${sockets.a}`, '--log-level', 'info'])
  t.after(async () => {
    await stop(agentA)
    await stop(agentB)
  })
  const attached = async (socket: string, count = 2) => (await dump(socket)).hubs.filter((hub) => hub.state === 'connected').length === count
  for (const socket of [sockets.a, sockets.b]) await waitUntil(`${socket} attached to both hubs`, () => attached(socket), 30_000)

  // Node 2 listens on nothing at all.
  const listening = async (node: TopoNode) => (await topo.execOk(node.netns, 'ss', ['-Hltn'])).trim().split('\n').filter(Boolean)
  assert.deepEqual(await listening(node2), [], 'no TCP listener in the zero-port agent\'s namespace')

  await podServers(t, n2p1)
  await podServers(t, n3p1)
  const dnsmasq = topo.spawn(n2p2.netns, 'dnsmasq', ['--keep-in-foreground', '--no-daemon', '--no-resolv', '--no-hosts', '--no-poll', '--listen-address', n2p2.ip, '--bind-interfaces',
    '--port', '53', '--address=/db.svc.test/10.77.0.9', '--pid-file=', '--user=root', '--log-facility=-'])
  t.after(() => {
    dnsmasq.kill('SIGKILL')
  })

  // Services: b hosts web/echo/dns (pods of node 2) and is a proxy exit; a hosts echo-a (a pod of node 3).
  await ok(ctl, ['tunnel', 'open', 'outbound', 'tcp/web', '--agent', 'agent-b', '--target', `${n2p1.ip}:8080`])
  await ok(ctl, ['tunnel', 'open', 'outbound', 'tcp/echo', '--agent', 'agent-b', '--target', `${n2p1.ip}:7007`])
  await ok(ctl, ['tunnel', 'open', 'outbound', 'udp/dns', '--agent', 'agent-b', '--target', `${n2p2.ip}:53`])
  await ok(ctl, ['tunnel', 'open', 'outbound', 'tcp/echo-a', '--agent', 'agent-a', '--target', `${n3p1.ip}:7007`])
  await ok(ctl, ['tunnel', 'open', 'inbound', 'tcp/web', '--agent', 'agent-a', '--listen', '18080'])
  await ok(ctl, ['tunnel', 'open', 'inbound', 'tcp/echo', '--agent', 'agent-a', '--listen', '17007'])
  await ok(ctl, ['tunnel', 'open', 'inbound', 'udp/dns', '--agent', 'agent-a', '--listen', '5353', '--idle-timeout', '5s'])
  await ok(ctl, ['tunnel', 'open', 'inbound', 'tcp/echo-a', '--agent', 'agent-b', '--listen', '27007'])
  await ok(ctl, ['proxy', 'config', '--agent', 'agent-b', '--add-target', node2.cidr, '--add-target', '*.svc.test', '--exclude', `${n2p2.ip}/32`])
  await ok(ctl, ['proxy', 'open', '--agent', 'agent-a', '--listen', '127.0.0.1:1080'])
  await waitUntil('agent-a has its listeners', async () => {
    const state = await dump(sockets.a)
    return state.ready && state.inbound.length === 3 && state.proxy?.address
  }, 20_000)
  await waitUntil('agent-b has its listener', async () => (await dump(sockets.b)).inbound.length === 1, 20_000)

  // Served and reached through the hubs only; node 2 listens on its loopback tunnel port and nothing else.
  const web = await topo.exec(node3.netns, 'curl', ['-sS', '--max-time', '10', 'http://127.0.0.1:18080/hello'])
  assert.match(web.stdout, new RegExp(`web in ${n2p1.name}: GET /hello`), web.stderr)
  assert.deepEqual(await echoThrough(topo, node2.netns, 27_007, 1024 * 1024), {ok: true, received: 1024 * 1024, same: true, sent: 1024 * 1024} as never, 'b reaches a service of a')
  assert.deepEqual((await listening(node2)).map((line) => line.split(/\s+/)[3]), ['127.0.0.1:27007'])

  // A capture at the hubs' host: TLS on the hub ports only, no plaintext; b's peer is a's own certificate.
  const capture = await startCapture(topo, node1.netns, {filter: `tcp and not port ${ctl.port}`, iface: 'any', seconds: 8})
  const marked = await echoThrough(topo, node3.netns, 17_007, 256 * 1024, MARKER)
  assert.equal(marked.same, true, JSON.stringify(marked))
  const packets = await capture.packets()
  assert.ok(packets.length > 10, `tshark saw ${packets.length} packets: ${capture.log()}`)
  const hubPort = (port: string) => HUB_PORTS.map(String).includes(port)
  for (const {destination, source} of packets) assert.ok(hubPort(source) || hubPort(destination), `a packet outside the hub ports: ${source} → ${destination}`)
  assert.ok(packets.some(({protocol}) => /TLS/.test(protocol)), 'TLS records on the hub ports')
  const wire = Buffer.concat(packets.map((packet) => packet.payload)).toString('latin1')
  assert.ok(!wire.includes(MARKER.slice(0, 12)), 'the payload never appears in clear at the hub')
  const inbound = await waitUntil('b logs the connection', () => agentB.lines().find((line) => line.message === 'connection complete' && line.direction === 'inbound' && line['dst.service'] === 'tcp/echo'))
  assert.equal(inbound['src.identity'], `spiffe://${TRUST_DOMAIN}/identity/agent-a`, 'the destination\'s TLS peer is the source agent, not a hub')

  // The proxy on node 3 reaches node 2's pods: names resolved at the exit, CONNECT and absolute URLs.
  const socks = await topo.exec(node3.netns, 'curl', ['-sS', '--max-time', '10', '--socks5-hostname', '127.0.0.1:1080', 'http://web.svc.test:8080/socks'])
  assert.match(socks.stdout, /web in .*: GET \/socks host=web\.svc\.test:8080/, socks.stderr)
  const forward = await topo.exec(node3.netns, 'curl', ['-sS', '--max-time', '10', '-x', 'http://127.0.0.1:1080', `http://${n2p1.ip}:8080/forward`])
  assert.match(forward.stdout, /GET \/forward/, forward.stderr)
  const outside = await topo.exec(node3.netns, 'curl', ['-sS', '--max-time', '10', '-x', 'http://127.0.0.1:1080', '-w', '\n%{http_code}', 'http://10.254.254.254:80/'])
  assert.match(outside.stdout, /no exit serves 10\.254\.254\.254:80[\s\S]*\n403$/)
  const excluded = await topo.exec(node3.netns, 'curl', ['-sS', '--max-time', '10', '--socks5-hostname', '127.0.0.1:1080', `http://${n2p2.ip}:53/`])
  assert.notEqual(excluded.code, 0)
  assert.match(excluded.stderr, /not allowed|refused|rejected|SOCKS/i)
  const garbage = await topo.exec(node3.netns, process.execPath, [path.join(FIXTURES, 'garbage.mjs'), '127.0.0.1', '1080', '300'], {timeoutMs: 30_000})
  assert.match(garbage.stdout, /"done":300/)
  assert.equal(agentA.child.exitCode, null, 'the agent survived the garbage')
  assert.match((await topo.exec(node3.netns, 'curl', ['-sS', '--max-time', '10', '-x', 'http://127.0.0.1:1080', `http://${n2p1.ip}:8080/after`])).stdout, /GET \/after/)

  // UDP: dig asks dnsmasq in a pod of node 2; a flood stays within the bound.
  const dig = await topo.exec(node3.netns, 'dig', ['@127.0.0.1', '-p', '5353', '+short', '+tries=2', '+time=3', 'db.svc.test', 'A'])
  assert.equal(dig.stdout.trim(), '10.77.0.9', dig.stderr)
  const flood = await topo.exec(node3.netns, process.execPath, [path.join(FIXTURES, 'udp-flood.mjs'), '127.0.0.1', '5353', '20000', '1200'], {timeoutMs: 60_000})
  assert.match(flood.stdout, /"sent":20000/)
  const udp = (await dump(sockets.a)).inbound.find((listener) => listener.service === 'udp/dns')!.udp!
  assert.ok(udp.peakBuffered <= 256 * 1024, `a flow held at most 256 KiB (peak ${udp.peakBuffered})`)
  assert.equal((await topo.exec(node3.netns, 'dig', ['@127.0.0.1', '-p', '5353', '+short', '+tries=2', '+time=3', 'db.svc.test', 'A'])).stdout.trim(), '10.77.0.9')

  // The hubs' own view, and the controller's.
  const hubStatus = JSON.parse(await topo.execOk(node1.netns, process.execPath, [RUN_JS, 'hub', 'status', '--admin', `127.0.0.1:${HUB_ADMIN[0]}`, '-o', 'json'])) as {agents: {name: string}[]}
  assert.deepEqual(hubStatus.agents.map((agent) => agent.name).sort(), ['agent-a', 'agent-b'])
  await waitUntil('proxy-status shows the attachments', async () => {
    const current = JSON.parse(await ok(ctl, ['proxy-status', '-o', 'json'])) as {agents: {hubs?: {state: string}[]; name: string}[]}
    return current.agents.filter((agent) => agent.hubs?.filter((hub) => hub.state === 'connected').length === 2).length === 2
  }, 15_000)
  assert.match(await ok(ctl, ['proxy-status']), /agent-b .*\(hubs only\).*hub-1 \(\d+\.\dms, \d+ streams?\), hub-2/)

  // Kill one hub while transfers run: new connections succeed through the other within 5 s, none corrupted.
  const transfers = Array.from({length: 6}, (_, index) => (async () => {
    await new Promise((resolve) => setTimeout(resolve, index * 300))
    return echoThrough(topo, node3.netns, 17_007, 2 * 1024 * 1024)
  })())
  await new Promise((resolve) => setTimeout(resolve, 400))
  await stop(hubs[0]!, 'SIGKILL')
  const killedAt = Date.now()
  const recovered = await waitUntil('a new connection through the other hub', async () => {
    const result = await echoThrough(topo, node3.netns, 17_007, 64 * 1024)
    return result.ok && result.same ? result : undefined
  }, 10_000, 100)
  assert.ok(recovered && Date.now() - killedAt < 5000, `recovered after ${Date.now() - killedAt} ms`)
  for (const result of await Promise.all(transfers)) assert.ok(!result.ok || result.same, `a transfer completed corrupted: ${JSON.stringify(result)}`)
  for (let i = 0; i < 3; i++) assert.equal((await echoThrough(topo, node3.netns, 17_007, 512 * 1024)).same, true)

  // The returning hub is used again: with the other one gone, traffic flows through it.
  hubs[0] = startHub(0)
  for (const socket of [sockets.a, sockets.b]) await waitUntil('both agents reattached to hub-1', () => attached(socket), 20_000)
  await stop(hubs[1]!, 'SIGKILL')
  await waitUntil('traffic through the returned hub', async () => (await echoThrough(topo, node3.netns, 17_007, 64 * 1024)).same, 10_000, 100)
  assert.match(await topo.execOk(node1.netns, 'curl', ['-s', `http://127.0.0.1:${HUB_ADMIN[0]}/metrics`]), /istio_tcp_connections_opened_total\{reporter="hub",source_workload="agent-a"/)
})

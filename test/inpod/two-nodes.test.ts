// Issue 4 end to end (root), once per iptables variant named explicitly (iptables-legacy, iptables-nft):
// two "nodes" × two "pods" from network namespaces, one controller (in node 1's namespace, reachable from both nodes), one `ztctl agent run --inpod-socket` per node (identity
// with role `node`, inside the node's namespace) and `ztctl redirect add` for each pod. A client in a
// pod on node 1 reaches a pod on node 2 by IP with no proxy setting; between the nodes only TLS on port
// 15008 is seen; a DENY policy on the source's service account refuses; `redirect remove` restores plain
// traffic with no leftover rule; restarting a node agent keeps new connections working.
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test, type TestContext} from 'node:test'

import {RUN_JS, runCli, startTestController, type TestController} from '../helpers/controller.js'
import {IPTABLES_VARIANTS, iptablesOf, otherVariant, savedText} from '../helpers/iptables.js'
import {startCapture} from '../helpers/capture.js'
import {createTopology, type TopoNode, type TopoPod} from '../helpers/netns.js'
import {requireTools} from '../helpers/tools.js'
import {nodeScopeFlags, podApp, podFetch, startNodeAgent as startAgentIn, stopNodeAgent as stopAgent, waitUntil} from './fixtures.js'

const NAMESPACE = 'default'
const FETCH_TIMEOUT_MS = 3000

async function ok(ctl: TestController, args: string[]): Promise<string> {
  const result = await ctl.run(args)
  assert.equal(result.code, 0, `ztctl ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`)
  return result.stdout
}

function serviceAccountOf(pod: TopoPod): string {
  return pod.index === 0 ? 'web' : `sa${pod.index}`
}

/** Fetch from inside POD; undefined when the connection fails (for polling). */
async function tryFetch(pod: TopoPod, host: string, port: number): Promise<string | undefined> {
  return podFetch(pod, host, port, FETCH_TIMEOUT_MS).catch(() => undefined)
}

for (const variant of IPTABLES_VARIANTS) {
  test(`iptables-${variant}: two nodes × two pods: HBONE between pods with no proxy setting, TLS-only on the wire, DENY, remove, agent restart`, async (t: TestContext) => {
    requireTools('tshark', 'curl', iptablesOf(variant))
    const topo = await createTopology(t, {nodes: 2, podsPerNode: 2})
    const [node1, node2] = topo.nodes as [TopoNode, TopoNode]
    const [n1p1, n1p2, n2p1, n2p2] = topo.pods as [TopoPod, TopoPod, TopoPod, TopoPod]
    const dir = await mkdtemp(path.join(tmpdir(), 'ztctl-two-nodes-'))
    t.after(() => rm(dir, {force: true, recursive: true}))
    const ctl = await startTestController(t, {listenHost: node1.bridgeIp, netns: node1.netns})

    // One node identity per node (role `node`: may ask for workload certificates and publish workloads).
    const identityFiles: string[] = []
    for (const node of [node1, node2]) {
      const name = `node${node.index + 1}`
      await ok(ctl, ['identity', 'create', name, '-a', 'node', ...nodeScopeFlags(node), '--out', path.join(dir, `${name}.jwt`)])
      await ok(ctl, ['enroll', path.join(dir, `${name}.jwt`), '--out', path.join(dir, `${name}.json`)])
      identityFiles.push(path.join(dir, `${name}.json`))
    }

    const paths = (node: TopoNode) => ({socket: path.join(dir, `n${node.index + 1}.sock`), state: path.join(dir, `state${node.index + 1}`)})
    const startNodeAgent = (node: TopoNode) => startAgentIn(topo, node, {identity: identityFiles[node.index]!, socket: paths(node).socket, stateDir: paths(node).state})
    const agents = [await startNodeAgent(node1), await startNodeAgent(node2)]
    t.after(async () => {
      for (const agent of agents) await stopAgent(agent)
    })
    const redirect = (verb: 'add' | 'remove', pod: TopoPod) => {
      const node = topo.nodes[pod.node]!
      const args = verb === 'add'
        ? ['redirect', 'add', '--netns', pod.netnsPath, '--workload', `${NAMESPACE}/${pod.name}`, '--service-account', serviceAccountOf(pod), '--backend', `iptables-${variant}`]
        : ['redirect', 'remove', '--netns', pod.netnsPath]
      return runCli([...args, '--agent-socket', paths(node).socket, '--state-dir', paths(node).state], ctl.env)
    }

    for (const pod of topo.pods) {
      const result = await redirect('add', pod)
      assert.equal(result.code, 0, `redirect add ${pod.name}: ${result.stdout}${result.stderr}`)
      assert.match(await savedText(topo, pod.netns, variant), /ZTCTL_OUTPUT/, `${pod.name}: rules written with iptables-${variant}`)
      assert.doesNotMatch(await savedText(topo, pod.netns, otherVariant(variant)), /ZTCTL/, `${pod.name}: nothing written with the other iptables`)
    }

    await podApp(t, n2p1, 8080)
    await podApp(t, n2p2, 8081)

    // Both agents learn all four workloads from the controller.
    const dumpOf = async (node: TopoNode) => JSON.parse(await topo.execOk(node.netns, 'curl', ['-s', '--max-time', '3', 'http://127.0.0.1:15000/config_dump'])) as {
      policies: unknown[]; workloads: {ips?: string[]; name: string; namespace?: string; node?: string}[]
    }
    for (const node of [node1, node2]) {
      await waitUntil(`node ${node.index + 1} knows the 4 pods`, async () => (await dumpOf(node)).workloads.filter((workload) => workload.namespace === NAMESPACE).length === 4)
    }

    // Capture between the nodes while pod 1 on node 1 talks to pod 1 on node 2 (the controller's own
    // port is excluded: that is the control plane, not pod traffic).
    const capture = await startCapture(topo, node1.netns, {filter: `tcp and not port ${ctl.port}`, iface: node1.links[0]!.ifname, maxPackets: 400, seconds: 6})

    // The client: curl from inside pod 1 on node 1, by IP, no proxy setting (the app answers raw bytes).
    const curl = await topo.exec(n1p1.netns, 'curl', ['-s', '--http0.9', '--max-time', '5', `http://${n2p1.ip}:8080/`])
    assert.equal(curl.stdout, `${n2p1.name} saw ${n2p1.ip}`, `curl: ${curl.stderr}`)
    assert.equal(await podFetch(n1p2, n2p2.ip, 8081), `${n2p2.name} saw ${n2p2.ip}`)
    const packets = await capture.packets()
    assert.ok(packets.length > 0, `tshark saw nothing: ${capture.log()}`)
    for (const {destination, source} of packets) assert.ok(source === '15008' || destination === '15008', `a packet outside port 15008: ${source} → ${destination}`)
    assert.ok(packets.some(({protocol}) => /TLS/.test(protocol)), 'TLS records on 15008')
    const payload = Buffer.concat(packets.map((packet) => packet.payload)).toString('latin1')
    assert.ok(!payload.includes(' saw ') && !payload.includes('GET /'), 'no plaintext of the apps on the wire')

    // proxy-config workloads lists the pods with namespace, address and node.
    const table = await topo.execOk(node1.netns, process.execPath, [RUN_JS, 'proxy-config', 'workloads', '--admin', '127.0.0.1:15000'])
    assert.match(table, /NAMESPACE\s+POD NAME\s+ADDRESS\s+NODE\s+WAYPOINT\s+PROTOCOL/)
    assert.match(table, new RegExp(`${NAMESPACE}\\s+${n2p1.name}\\s+${n2p1.ip.replaceAll('.', '\\.')}\\s+node2\\s+None\\s+HBONE`))

    // A DENY policy on pod 1's service account refuses its connection; the other pod still gets through.
    await ok(ctl, ['policy', 'create', 'deny-web', '--action', 'DENY', '--from', `sa:${NAMESPACE}/web`])
    await waitUntil('the DENY policy refusing web', async () => (await tryFetch(n1p1, n2p1.ip, 8080)) === undefined)
    assert.equal(await podFetch(n1p2, n2p1.ip, 8080), `${n2p1.name} saw ${n2p1.ip}`)
    await waitUntil('node 2 logging the policy rejection', () => /policy rejection: denied by policy \\"deny-web\\"/.test(agents[1]!.output()))
    await ok(ctl, ['policy', 'delete', 'deny-web'])
    await waitUntil('web allowed again', async () => (await tryFetch(n1p1, n2p1.ip, 8080)) === `${n2p1.name} saw ${n2p1.ip}`)

    // `redirect remove`: plain traffic again (the source address survives to the app's pod) and no rule left.
    const removed = await redirect('remove', n1p1)
    assert.equal(removed.code, 0, removed.stdout + removed.stderr)
    for (const either of IPTABLES_VARIANTS) {
      const saved = await savedText(topo, n1p1.netns, either)
      assert.ok(!/ZTCTL|0x539|0x111/.test(saved), `leftover rules (iptables-${either}):\n${saved}`)
    }

    assert.ok(!/0x111/.test(await topo.execOk(n1p1.netns, 'ip', ['rule'])), 'no fwmark rule left')
    assert.equal(await topo.execOk(n1p1.netns, 'ip', ['route', 'show', 'table', '100']), '')
    assert.equal(await podFetch(n1p1, n2p1.ip, 8080), `${n2p1.name} saw ${n2p1.ip}`)
    await waitUntil('the removed pod leaves the mesh', async () => (await dumpOf(node2)).workloads.every((workload) => workload.name !== n1p1.name))

    // Restart node 2's agent: the pods' new connections work again as soon as it is back.
    await stopAgent(agents[1]!)
    const restartedAt = Date.now()
    agents[1] = await startNodeAgent(node2)
    const serving = Date.now()
    await waitUntil('new connections after the restart', async () => (await tryFetch(n1p2, n2p1.ip, 8080)) === `${n2p1.name} saw ${n2p1.ip}`, 10_000, 50).catch((error: Error) => {
      throw new Error(`${error.message}\nnode 1:\n${agents[0]!.output().slice(-3000)}\nnode 2:\n${agents[1]!.output().slice(-3000)}`)
    })
    const recovered = Date.now()
    t.diagnostic(`node agent restart: process up and workloads re-created in ${serving - restartedAt} ms; first new connection ok ${recovered - serving} ms later`)
    assert.equal(await podFetch(n1p2, n2p2.ip, 8081), `${n2p2.name} saw ${n2p2.ip}`)
  })
}

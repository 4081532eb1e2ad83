// The shared root helper itself: two nodes with two pods each, pods reach each other across nodes
// (v4 and v6), and teardown leaves no netns behind.
import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {test} from 'node:test'

import {createTopology, hasRoot, type Topology} from '../helpers/netns.js'
import {requireTools} from '../helpers/tools.js'

/** The server may not listen yet: a few bounded attempts. */
async function connectWithRetry(topo: Topology, netns: string, address: string): Promise<string> {
  let last = ''
  for (let attempt = 0; attempt < 20; attempt++) {
    const result = await topo.exec(netns, 'socat', ['-T', '2', '-', `TCP:${address}:7000`], {input: ''})
    if (result.code === 0 && result.stdout) return result.stdout
    last = result.stderr
    await new Promise((resolve) => setTimeout(resolve, 100))
  }

  throw new Error(`could not reach ${address}:7000: ${last}`)
}

test('createTopology: pods reach pods on the other node, teardown removes every netns', async (t) => {
  hasRoot()
  requireTools('socat')
  const topo = await createTopology(t, {ipv6: true, nodes: 2, podsPerNode: 2})
  assert.equal(topo.pods.length, 4)
  assert.equal(new Set(topo.pods.map((pod) => pod.ip)).size, 4)
  const [source, , , target] = topo.pods
  const server = topo.spawn(target!.netns, 'socat', ['TCP6-LISTEN:7000,ipv6only=0,reuseaddr,fork', 'SYSTEM:echo pong'])
  assert.ok(server.pid)
  for (const address of [target!.ip, `[${target!.ip6!}]`]) {
    const reply = await connectWithRetry(topo, source!.netns, address)
    assert.equal(reply.trim(), 'pong', `pod on node 1 reaches ${address} on node 2`)
  }

  const addresses = await topo.execOk(target!.netns, 'ip', ['-4', '-o', 'addr', 'show', 'eth0'])
  assert.match(addresses, new RegExp(target!.ip.replaceAll('.', '\\.')))
  const paths = [...topo.nodes.map((node) => node.netnsPath), ...topo.pods.map((pod) => pod.netnsPath)]
  assert.ok(paths.every((p) => existsSync(p)))
  await topo.teardown()
  assert.ok(paths.every((p) => !existsSync(p)), 'every netns is gone after teardown')
})

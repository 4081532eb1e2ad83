// The graph from two real agents' admin and metrics ports: the edge's figures from the hosting agent's
// counters and connection table, from the source agent's when the host is out of reach, refusals, rates,
// and a stale ready file's address refused.
import assert from 'node:assert/strict'
import {test} from 'node:test'

import type {AgentReading} from '../../src/lib/dashboard/agents.js'
import {readAgent} from '../../src/lib/dashboard/agents.js'
import {buildGraph, EdgeRates, meshEdgeId} from '../../src/lib/dashboard/graph.js'
import type {ConfigSnapshot} from '../../src/lib/config/types.js'
import {deadPort, dial, echoTunnel, roundTrip, waitFor} from '../proxy/helpers.js'

test('edges carry the agents\' own figures: hosting agent first, the source when the host is out of reach', async (t) => {
  const {client, clientAgent, config, echo, listen, server, serverAgent} = await echoTunnel(t)
  const admin = {a: clientAgent.agent.addresses.admin!, b: serverAgent.agent.addresses.admin!}

  assert.equal((await roundTrip(listen, Buffer.from('x'.repeat(1000)))).length, 1000)
  const held = await dial(listen)
  t.after(() => held.destroy())
  await waitFor('the held connection in agent-b\'s table', () => serverAgent.agent.configDump().connections.length === 1)

  const graphOf = (readings: Map<string, AgentReading>) => buildGraph({
    agents: [{name: 'agent-a', online: true, status: 'SYNCED'}, {name: 'agent-b', online: true, status: 'SYNCED'}],
    inbound: Object.values(config.inbound), outbound: Object.values(config.outbound), readings,
    spiffe: new Map([['agent-a', client.spiffe], ['agent-b', server.spiffe]]),
  })
  const edgeOf = (graph: ReturnType<typeof graphOf>) => graph.edges.find((edge) => edge.id === meshEdgeId('tcp/echo', 'agent-a', 'agent-b'))!
  const both = new Map([['agent-a', await readAgent('agent-a', admin.a)], ['agent-b', await readAgent('agent-b', admin.b)]])
  const graph = graphOf(both)
  assert.deepEqual(graph.nodes.map((node) => `${node.kind} ${node.label}`), [
    'agent agent-a', 'agent agent-b', `listener ${listen}`, `target 127.0.0.1:${echo.port}`,
  ])
  const stats = edgeOf(graph).stats!
  assert.deepEqual([stats.reporter, stats.total, stats.active, stats.refused, stats.bytes], ['destination', 2, 1, 0, 2000], 'echo: 1000 bytes each way')
  assert.equal(graph.edges.find((edge) => edge.kind === 'inbound')?.stats?.active, 1, 'the listener edge: agent-a\'s own outbound connections')

  // agent-b out of reach: its address answers nothing; the figures come from agent-a (reporter source).
  const gone = await readAgent('agent-b', `127.0.0.1:${await deadPort()}`)
  assert.match(gone.problem ?? '', /cannot read agent-b's \/config_dump/)
  const fromSource = edgeOf(graphOf(new Map([['agent-a', both.get('agent-a')!], ['agent-b', gone]]))).stats!
  assert.deepEqual([fromSource.reporter, fromSource.total, fromSource.active], ['source', 2, 1])
  assert.match((await readAgent('agent-b', admin.a)).problem ?? '', /is not agent-b's admin port \(it answers as agent-a\)/, 'a stale ready file')

  // A DENY refuses the next connection: counted as a refusal on the edge, marked recent by the rates.
  const rates = new EdgeRates()
  rates.apply(graph.edges, 1000)
  const denied: ConfigSnapshot = structuredClone(config)
  denied.policy.deny = {action: 'DENY', from: ['@agent-a'], name: 'deny', ports: [], services: [], sourceCidrs: []}
  await serverAgent.writeConfig({version: 2, resources: denied} as unknown as ConfigSnapshot)
  await waitFor('the DENY applied', () => serverAgent.agent.configDump().version === 2)
  assert.equal((await roundTrip(listen, Buffer.from('no')).catch(() => Buffer.alloc(0))).length, 0)
  const after = graphOf(new Map([['agent-a', await readAgent('agent-a', admin.a)], ['agent-b', await readAgent('agent-b', admin.b)]]))
  rates.apply(after.edges, 3000)
  const refused = edgeOf(after).stats!
  assert.ok(refused.refused >= 1, `refused ${refused.refused}`)
  assert.equal(refused.refusedRecently, true)
  assert.equal(refused.bytesPerSecond, (refused.bytes - stats.bytes) / 2, 'bytes per second over the two seconds between rounds')
})

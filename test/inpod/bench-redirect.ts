// Per-connection cost of the in-pod redirect path against a plain connection and an HBONE tunnel.
// A bounded measurement, not a test: `node --import tsx test/inpod/bench-redirect.ts [N]` as root.
// Each sample = connect, read a short reply, close, sequentially, from one Node process (clients,
// agents and apps share it, so absolute numbers are pessimistic; the ratios are what matter).
import {createServer} from 'node:net'

import {createTopology, type TopoPod} from '../helpers/netns.js'
import {createMesh, roundTrip, startAgent, tempDir, tunnelConfig} from '../proxy/helpers.js'
import {podApp, podFetch, redirectPod} from './fixtures.js'

const samples = Math.min(Number(process.argv[2] ?? 300), 5000)
const cleanups: (() => Promise<void> | void)[] = []
const context = {after: (fn: () => Promise<void> | void) => void cleanups.push(fn)}

async function measure(what: string, once: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 20; i++) await once() // warm-up
  const started = process.hrtime.bigint()
  for (let i = 0; i < samples; i++) await once()
  const micros = Number(process.hrtime.bigint() - started) / samples / 1000
  process.stdout.write(`${what.padEnd(44)} ${micros.toFixed(0).padStart(6)} µs/connection (${samples} sequential)\n`)
}

try {
  const topo = await createTopology(context, {nodes: 1, podsPerNode: 2})
  const [pod1, pod2] = topo.pods as [TopoPod, TopoPod]
  await podApp(context, pod2, 8080)
  await measure('direct pod1 → pod2 (no redirect)', () => podFetch(pod1, pod2.ip, 8080))

  const dir = await tempDir(context as never)
  const mesh = await createMesh()
  const empty = {agent: {}, identity: {}, inbound: {}, outbound: {}, policy: {}, revocation: {}}
  const node = await startAgent(context as never, dir, await mesh.identity('node1'), empty as never, {inpod: {socketPath: `${dir}/inpod.sock`, stateDir: `${dir}/state`}, logLevel: 'warn'})
  const {CniClient} = await import('./fixtures.js')
  const cni = await CniClient.connect(`${dir}/inpod.sock`)
  await cni.next()
  await cni.request({type: 'add', uid: 'p1', workload: {namespace: 'default', name: 'p1', serviceAccount: 'web'}, netns: pod1.netnsPath, ips: [pod1.ip]})
  cni.close()
  await redirectPod(topo, pod1)
  await measure('redirect pod1 → 15001 → passthrough → pod2', () => podFetch(pod1, pod2.ip, 8080))
  await node.agent.shutdown('bench step done')

  const app = createServer((socket) => socket.end('ok'))
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
  cleanups.push(() => void app.close())
  const [client, server] = await Promise.all([mesh.identity('client'), mesh.identity('server')])
  const targets = [{host: '127.0.0.1', port: (app.address() as {port: number}).port}]
  const serverAgent = await startAgent(context as never, dir, server, tunnelConfig({client, server, serverHbone: '127.0.0.1:1', targets}), {logLevel: 'warn'})
  const clientAgent = await startAgent(context as never, dir, client, tunnelConfig({client, server, serverHbone: serverAgent.agent.addresses.advertise, targets}), {logLevel: 'warn'})
  await clientAgent.agent.ready
  const listen = clientAgent.agent.addresses.inbound['tcp/echo@client']!
  await measure('HBONE tunnel (inbound listener → mTLS h2)', () => roundTrip(listen, Buffer.from('x')))
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup()
}

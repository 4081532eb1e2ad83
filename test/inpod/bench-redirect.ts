// Per-connection cost of the in-pod redirect path against a plain connection and an HBONE tunnel.
// A bounded measurement, not a test: `node --import tsx test/inpod/bench-redirect.ts [N]` as root.
// Each sample = connect, read a short reply, close, sequentially, from one Node process (clients,
// agents and apps share it, so absolute numbers are pessimistic; the ratios are what matter).
import {createServer} from 'node:net'

import {emptySnapshot} from '../../src/lib/config/types.js'
import {createTopology, type TopoPod} from '../helpers/netns.js'
import {createMesh, roundTrip, startAgent, tempDir, TRUST_DOMAIN, tunnelConfig} from '../proxy/helpers.js'
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
  const topo = await createTopology(context, {nodes: 2, podsPerNode: 2})
  const [pod1, pod2, pod3] = topo.pods as [TopoPod, TopoPod, TopoPod]
  await podApp(context, pod2, 8080)
  await measure('direct pod1 → pod2 (no redirect)', () => podFetch(pod1, pod2.ip, 8080))

  const dir = await tempDir(context as never)
  const mesh = await createMesh()
  const empty = emptySnapshot()
  const node = await startAgent(context as never, dir, await mesh.identity('node1'), empty as never, {inpod: {socketPath: `${dir}/inpod.sock`, stateDir: `${dir}/state`}, logLevel: 'warn'})
  const {CniClient} = await import('./fixtures.js')
  const cni = await CniClient.connect(`${dir}/inpod.sock`)
  await cni.next()
  await cni.request({type: 'add', uid: 'p1', workload: {namespace: 'default', name: 'p1', serviceAccount: 'web'}, netns: pod1.netnsPath, ips: [pod1.ip]})
  cni.close()
  await redirectPod(topo, pod1)
  await measure('redirect pod1 → 15001 → passthrough → pod2', () => podFetch(pod1, pod2.ip, 8080))
  await node.agent.shutdown('bench step done')

  // Pod → pod on another node agent: 15001 → HBONE (mTLS h2, pooled) → the pod's 15008 → the app.
  const issueCert = async ({csr, namespace, serviceAccount}: {csr: string; namespace: string; serviceAccount: string}) => {
    const spiffe = `spiffe://${TRUST_DOMAIN}/ns/${namespace}/sa/${serviceAccount}`
    return {ca: mesh.signer.ca.certPem, cert: (await mesh.signer.signCsr(csr, {spiffe, ttlSeconds: 3600})).certPem, spiffe}
  }

  const record = (pod: TopoPod, node: string) => ({hbone: '127.0.0.1:1', ips: [pod.ip], name: pod.name, namespace: 'default', node, serviceAccount: pod.name, uid: pod.name})
  const meshConfig = {...emptySnapshot(), workload: {[pod1.name]: record(pod1, 'n1'), [pod3.name]: record(pod3, 'n2')}}
  await podApp(context, pod3, 8080)
  for (const [pod, name] of [[pod1, 'n1'], [pod3, 'n2']] as const) {
    const socketPath = `${dir}/${name}.sock`
    await startAgent(context as never, dir, await mesh.identity(name), meshConfig, {inpod: {issueCert, socketPath, stateDir: `${dir}/${name}-state`}, logLevel: 'warn'})
    const client = await CniClient.connect(socketPath)
    await client.next()
    await client.request({type: 'add', uid: pod.name, workload: {namespace: 'default', name: pod.name, serviceAccount: pod.name}, netns: pod.netnsPath, ips: [pod.ip]})
    client.close()
  }

  await redirectPod(topo, pod3)
  await measure('redirect pod1 → HBONE → pod3 (other node)', () => podFetch(pod1, pod3.ip, 8080))

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

// Kubernetes Services from redirected pods (root; issue 12 §1): two node agents in this process, pods in
// network namespaces with Istio's in-pod rules; the endpoint pods' workloads carry the Service's ClusterIP
// and ports (as the controller publishes them from EndpointSlices). A connection to VIP:port leaves the
// client pod as HBONE to the endpoint pod's 15008 on the other node and reaches its target port inside that
// pod; with an endpoint on the client's own node, the local fast path is taken; a port the Service does not
// have is not captured as the Service (plain passthrough to an address nobody answers).
import assert from 'node:assert/strict'
import path from 'node:path'
import {test} from 'node:test'

import {type ConfigSnapshot, emptySnapshot, type WorkloadRecord} from '../../src/lib/config/types.js'
import {createTopology, type TopoPod} from '../helpers/netns.js'
import {createMesh, startAgent, tempDir, TRUST_DOMAIN, waitFor} from '../proxy/helpers.js'
import {CniClient, INPOD_TEST_DATA_PATH, outboundRedirectPackets, podApp, podFetch, redirectPod} from './fixtures.js'

const WEB_VIP = '10.96.0.10'
const API_VIP = '10.96.0.11'

test('ClusterIP:port from a redirected pod reaches an endpoint pod: HBONE to its node, local endpoint first, target port inside the pod', async (t) => {
  const topo = await createTopology(t, {nodes: 2, podsPerNode: 2})
  const [client, localApi, remoteWeb, remoteApi] = topo.pods as [TopoPod, TopoPod, TopoPod, TopoPod]
  const dir = await tempDir(t)
  const mesh = await createMesh()
  const issueCert = async ({csr, namespace, serviceAccount}: {csr: string; namespace: string; serviceAccount: string}) => {
    const spiffe = `spiffe://${TRUST_DOMAIN}/ns/${namespace}/sa/${serviceAccount}`
    return {ca: mesh.signer.ca.certPem, cert: (await mesh.signer.signCsr(csr, {spiffe, ttlSeconds: 3600})).certPem, spiffe}
  }

  const services: Record<string, WorkloadRecord['services']> = {
    [localApi.name]: [{name: 'shop/api', ports: [{port: 81, targetPort: 9081}], vips: [API_VIP]}],
    [remoteApi.name]: [{name: 'shop/api', ports: [{port: 81, targetPort: 9081}], vips: [API_VIP]}],
    [remoteWeb.name]: [{name: 'shop/web', ports: [{port: 80, targetPort: 8080}], vips: [WEB_VIP]}],
  }
  const record = (pod: TopoPod): WorkloadRecord => ({
    hbone: '127.0.0.1:1', ips: [pod.ip], name: pod.name, namespace: 'shop', node: `node${pod.node + 1}`, serviceAccount: pod === client ? 'client' : 'server',
    services: services[pod.name], uid: `uid-${pod.name}`,
  })
  const pods = [client, localApi, remoteWeb, remoteApi]
  const config: ConfigSnapshot = {...emptySnapshot(), workload: Object.fromEntries(pods.map((pod) => [`uid-${pod.name}`, record(pod)]))}
  const nodes = await Promise.all([1, 2].map(async (index) => {
    const socketPath = path.join(dir, `node${index}.sock`)
    const running = await startAgent(t, dir, await mesh.identity(`node${index}`), config, {dataPath: INPOD_TEST_DATA_PATH, inpod: {issueCert, socketPath, stateDir: path.join(dir, `state${index}`)}})
    const cni = await CniClient.connect(socketPath)
    t.after(() => cni.close())
    await cni.next()
    return {...running, cni}
  }))
  for (const pod of pods) {
    const {uid, name, namespace, serviceAccount} = record(pod)
    assert.equal((await nodes[pod.node]!.cni.request({type: 'add', uid, workload: {name, namespace, serviceAccount}, netns: pod.netnsPath, ips: [pod.ip]})).error, undefined)
    await redirectPod(topo, pod)
  }

  await podApp(t, remoteWeb, 8080)
  await podApp(t, localApi, 9081)
  await podApp(t, remoteApi, 9081)

  // Another node's endpoint: HBONE to its pod's 15008, the target port inside it (the app sees its own address).
  const before = await outboundRedirectPackets(topo, client)
  assert.equal(await podFetch(client, WEB_VIP, 80), `${remoteWeb.name} saw ${remoteWeb.ip}`)
  assert.ok(await outboundRedirectPackets(topo, client) > before, 'captured in the client pod')
  const line = await waitFor('the source access log line', () => nodes[0]!.logs.find((entry) => entry.scope === 'access' && entry['dst.addr'] === `${remoteWeb.ip}:15008`))
  assert.equal(line['src.identity'], `spiffe://${TRUST_DOMAIN}/ns/shop/sa/client`)
  assert.equal(line['dst.identity'], `spiffe://${TRUST_DOMAIN}/ns/shop/sa/server`)
  assert.equal(line['dst.hbone_addr'], `${remoteWeb.ip}:8080`)

  // Endpoints on both nodes: the one on the client's node answers, without an HBONE hop.
  const linesBefore = nodes[0]!.logs.length
  for (let i = 0; i < 5; i++) assert.equal(await podFetch(client, API_VIP, 81), `${localApi.name} saw ${localApi.ip}`)
  assert.ok(!nodes[0]!.logs.slice(linesBefore).some((entry) => entry['dst.addr'] === `${remoteApi.ip}:15008`), 'no HBONE to the other node')

  // A port the Service does not have is not the Service: passthrough to the VIP, which nothing answers here.
  await assert.rejects(podFetch(client, WEB_VIP, 81, 1500), /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|timed out|ECONNRESET/)
})

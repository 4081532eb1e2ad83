// `ztctl inject` on a real cluster (issue 12 §4): ztctl installed, three Deployments of our image injected by
// the CLI — a server hosting tcp/echo (proxy mode, its app on 127.0.0.1:8080), a client in proxy mode (the
// service on 127.0.0.1:9000) and a client in tproxy mode (an intercepted address, captured with NET_ADMIN in
// its own pod) — each agent running as the identity in its Secret. A real process in each client pod reaches
// the server's app through the mesh. The harness has no cluster DNS, so the pods get a host alias for the
// controller's Service name (what cluster DNS answers elsewhere; mesh-fixtures.ts).
import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'

import type {KubernetesObject, V1Pod} from '@kubernetes/client-node'
import {parseAllDocuments} from 'yaml'

import {K8S_TEST_TIMEOUT_MS, nodeValues, startCluster, ztctlImage} from '../helpers/k8s.js'
import {waitUntil} from '../helpers/wait.js'
import {controllerHostAliases, enrollInCluster, meshCli} from './mesh-fixtures.js'

const NS = 'apps'
// A mesh name: the sidecar's DNS answers it from 100.64.0.0/10, which it routes locally (a pod has no route to
// an arbitrary address, and connect() fails before nat OUTPUT could capture it).
const INTERCEPT = 'echo.mesh'
const SERVER_APP = "require('http').createServer((q, s) => s.end('echo from ' + process.env.HOSTNAME)).listen(8080, '127.0.0.1')"
const fetchText = (url: string): string[] => ['/usr/local/bin/node', '-e', `fetch(${JSON.stringify(url)}).then((r) => r.text()).then((t) => console.log(t), (e) => {console.error(e.cause?.code ?? e.message); process.exit(1)})`]

test('injected Deployments (proxy and tproxy) reach a mesh service hosted by an injected server, from real pods', {timeout: K8S_TEST_TIMEOUT_MS}, async (t) => {
  const image = await ztctlImage()
  const cluster = await startCluster(t, {nodes: 1})
  await cluster.importImage(image.tar)
  const cli = await meshCli(t, cluster)
  const {home, ztctl} = cli
  await ztctl(['install', '--profile', 'ambient', '-y', ...nodeValues(cluster.nodes[0]), '--set', 'cni.enabled=false'])
  const {core} = cluster
  await cluster.createNamespace(NS)
  const hostAliases = await controllerHostAliases(cluster)
  const names = ['server', 'client-proxy', 'client-tproxy']
  const identities = await enrollInCluster(cli, cluster, image.ref, NS, names)
  for (const name of names) await core.createNamespacedSecret({body: {metadata: {name: `ztctl-${name}`}, stringData: {'identity.json': identities[name]}}, namespace: NS})

  await ztctl(['tunnel', 'open', 'outbound', 'tcp/echo', '--agent', 'server', '--target', '127.0.0.1:8080', '--no-wait'])
  await ztctl(['tunnel', 'open', 'inbound', 'tcp/echo', '--agent', 'client-tproxy', '--intercept', `${INTERCEPT}:80`, '--no-wait'])

  const deployment = (name: string, command: string[]) => ({
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: {name, namespace: NS},
    spec: {replicas: 1, selector: {matchLabels: {app: name}}, template: {metadata: {labels: {app: name}}, spec: {
      containers: [{command, image: image.ref, imagePullPolicy: 'Never', name: 'main'}], hostAliases, terminationGracePeriodSeconds: 0,
    }}},
  })
  const inject = async (objects: object[], args: string[]) => {
    const file = path.join(home, `deploy-${args.join('-').replaceAll(/\W+/g, '')}.yaml`)
    await writeFile(file, objects.map((object) => JSON.stringify(object)).join('\n---\n'))
    return ztctl(['inject', '-f', file, '--image', image.ref, '--image-pull-policy', 'Never', ...args])
  }

  const injected = [
    await inject([deployment('server', ['/usr/local/bin/node', '-e', SERVER_APP]), deployment('client-proxy', ['sleep', '3600'])], ['--mode', 'proxy', '--proxy-port', 'tcp/echo=9000']),
    await inject([deployment('client-tproxy', ['sleep', '3600'])], ['--mode', 'tproxy']),
  ]
  for (const text of injected) for (const doc of parseAllDocuments(text)) await cluster.objects.create(doc.toJS() as KubernetesObject)

  const podOf = async (app: string): Promise<V1Pod> => {
    const pods = async () => (await core.listNamespacedPod({labelSelector: `app=${app}`, namespace: NS})).items
    try {
      return await waitUntil(`a Ready pod of ${app}`, async () => (await pods()).find((pod) => pod.status?.conditions?.some((condition) => condition.type === 'Ready' && condition.status === 'True')), 180_000, 500)
    } catch (error) {
      const [pod] = await pods()
      const logs = pod ? await cluster.podLogs(NS, pod.metadata!.name!, 'ztctl-agent').catch((failed: Error) => failed.message) : 'no pod'
      throw new Error(`${(error as Error).message}; its agent's log:\n${logs.slice(-3000)}`, {cause: error})
    }
  }
  const [server, proxyClient, tproxyClient] = await Promise.all(names.map(podOf))
  assert.deepEqual(tproxyClient.spec!.initContainers!.map((container) => container.name), ['ztctl-init'])

  const viaMesh = async (pod: V1Pod, url: string): Promise<string> => {
    try {
      return await waitUntil(`${url} from ${pod.metadata!.name}`, async () => {
        const result = await cluster.exec(NS, pod.metadata!.name!, fetchText(url), {container: 'main'})
        if (result.code !== 0) throw new Error(result.stderr.trim() || `exit ${result.code}`)
        return result.stdout.trim()
      }, 60_000, 500)
    } catch (error) {
      const logs = await cluster.podLogs(NS, pod.metadata!.name!, 'ztctl-agent').catch((failed: Error) => failed.message)
      throw new Error(`${(error as Error).message}; its agent's log:\n${logs.slice(-4000)}`, {cause: error})
    }
  }
  assert.equal(await viaMesh(proxyClient, 'http://127.0.0.1:9000/'), `echo from ${server.metadata!.name}`, 'proxy mode: the service on the pod\'s loopback')
  assert.equal(await viaMesh(tproxyClient, `http://${INTERCEPT}/`), `echo from ${server.metadata!.name}`, 'tproxy mode: the intercepted name answered and captured in the pod')

  // The server's agent saw both clients by their identities.
  const logs = await cluster.podLogs(NS, server.metadata!.name!, 'ztctl-agent')
  for (const client of ['client-proxy', 'client-tproxy']) assert.match(logs, new RegExp(`spiffe://cluster\\.local/identity/${client}`), `the server's agent logged ${client}`)
})

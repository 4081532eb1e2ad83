// Node agents enroll with their ServiceAccount token against a real controller process and a real
// API server: real TokenReview, real tokens from the TokenRequest API bound to real pod objects. A real
// `agent run --kubernetes` becomes ready as node-<node>; renewal is the same call with a new token; ten
// first enrollments of one node at once make one identity; every wrong token is refused in words (another
// ServiceAccount, another node, expired, forged, another audience, not bound to a pod, a deleted pod,
// garbage); an impostor holding a valid mesh certificate never sees the token; a refused agent exits.
import assert from 'node:assert/strict'
import {createPrivateKey, createSign, generateKeyPairSync} from 'node:crypto'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import http2 from 'node:http2'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'

import type {V1Pod} from '@kubernetes/client-node'

import {ControllerClient} from '../../src/lib/client/controller-client.js'
import {enrollWithServiceAccount, type KubeEnrollOptions} from '../../src/lib/client/kube-enroll.js'
import {ZtError} from '../../src/lib/errors.js'
import {parseIdentityFile} from '../../src/lib/identity/file.js'
import {certInfo} from '../../src/lib/pki/cert-info.js'
import {RUN_JS} from '../helpers/controller.js'
import {type Cluster, K8S_TEST_TIMEOUT_MS, startCluster} from '../helpers/k8s.js'
import {waitUntil} from '../helpers/wait.js'
import {applyCrds, freshNamespace, startKubeController} from './fixtures.js'

const NODE_SA = 'ztctl-node'

async function pod(cluster: Cluster, namespace: string, name: string, serviceAccount: string, node: string): Promise<V1Pod> {
  // Only the object: no kubelet runs it (this cluster has no node); TokenRequest and TokenReview need no more.
  return cluster.core.createNamespacedPod({
    body: {metadata: {name}, spec: {automountServiceAccountToken: false, containers: [{image: 'ztctl.local/none:0', name: 'c'}], nodeName: node, serviceAccountName: serviceAccount}},
    namespace,
  })
}

async function tokenFor(cluster: Cluster, namespace: string, serviceAccount: string, options: {audience?: string; pod?: V1Pod} = {}): Promise<string> {
  const boundObjectRef = options.pod ? {apiVersion: 'v1', kind: 'Pod', name: options.pod.metadata!.name!, uid: options.pod.metadata!.uid!} : undefined
  const request = await cluster.core.createNamespacedServiceAccountToken({
    body: {spec: {audiences: [options.audience ?? 'ztctl'], boundObjectRef, expirationSeconds: 600}}, name: serviceAccount, namespace,
  })
  return request.status!.token
}

/** The same claims, re-signed: with the cluster's own ServiceAccount key and `exp` in the past, or with a stranger's key. */
function resign(token: string, key: ReturnType<typeof createPrivateKey>, claims: (payload: Record<string, unknown>) => Record<string, unknown>): string {
  const [header, payload] = token.split('.')
  const body = Buffer.from(JSON.stringify(claims(JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>))).toString('base64url')
  const signature = createSign('sha256').update(`${header}.${body}`).sign({dsaEncoding: 'ieee-p1363', key})
  return `${header}.${body}.${signature.toString('base64url')}`
}

test('node agents enroll with their ServiceAccount token; wrong tokens are refused in words', {timeout: K8S_TEST_TIMEOUT_MS}, async (t) => {
  const cluster = await startCluster(t, {nodes: 0})
  await applyCrds(cluster)
  const namespace = await freshNamespace(t, cluster, 'enroll')
  for (const name of [NODE_SA, 'other']) await cluster.core.createNamespacedServiceAccount({body: {metadata: {name}}, namespace})
  const controller = await startKubeController(t, cluster, namespace, 'replica-a')
  const dir = await mkdtemp(path.join(tmpdir(), 'ztctl-enroll-'))
  t.after(() => rm(dir, {force: true, recursive: true}))
  const caFile = path.join(dir, 'root-cert.pem')
  const root = await waitUntil('ConfigMap ztctl-ca-root', async () => (await cluster.core.readNamespacedConfigMap({name: 'ztctl-ca-root', namespace})).data?.['root-cert.pem'], 30_000, 100)
  await writeFile(caFile, root)
  let tokens = 0
  const enrollWith = async (token: string, node: string, url = controller.url): Promise<ReturnType<typeof enrollWithServiceAccount>> => {
    const tokenFile = path.join(dir, `token-${++tokens}`)
    await writeFile(tokenFile, token)
    const options: KubeEnrollOptions = {caFile, controller: url, node, timeoutMs: 10_000, tokenFile}
    return enrollWithServiceAccount(options)
  }

  const refusal = async (token: string, node: string, code: string, words: RegExp): Promise<void> => {
    await assert.rejects(enrollWith(token, node), (error: unknown) => {
      assert.ok(ZtError.is(error), String(error))
      assert.equal(error.code, code, error.message)
      assert.match(error.message, words)
      assert.equal(error.exit, 4)
      return true
    })
  }

  // A real agent process, with nothing but the token, the CA bundle and its node name.
  const agentA = await pod(cluster, namespace, 'agent-a', NODE_SA, 'node-a')
  const tokenFile = path.join(dir, 'agent-a.token')
  await writeFile(tokenFile, await tokenFor(cluster, namespace, NODE_SA, {pod: agentA}))
  const readyFile = path.join(dir, 'agent-a.ready.json')
  const agent = spawn(process.execPath, [
    RUN_JS, 'agent', 'run', '--kubernetes', '--controller', controller.url, '--kube-token-file', tokenFile, '--kube-ca-file', caFile,
    '--hbone', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--metrics', '127.0.0.1:0', '--readiness', '127.0.0.1:0', '--ready-file', readyFile,
  ], {env: {...process.env, NODE_NAME: 'node-a', NO_COLOR: '1'}, stdio: ['ignore', 'pipe', 'pipe']})
  let agentLog = ''
  agent.stdout.on('data', (chunk: Buffer) => (agentLog += chunk.toString()))
  agent.stderr.on('data', (chunk: Buffer) => (agentLog += chunk.toString()))
  t.after(() => agent.kill('SIGKILL'))
  const ready = await waitUntil(`agent ready file\n${agentLog}`, async () => JSON.parse(await readFile(readyFile, 'utf8')) as {addresses: {readiness: string}; identity: string; spiffe: string}, 60_000, 100)
  assert.equal(ready.identity, 'node-node-a')
  assert.equal(ready.spiffe, 'spiffe://cluster.local/identity/node-node-a')
  assert.equal((await fetch(`http://${ready.addresses.readiness}/healthz/ready`)).status, 200)

  const secret = await cluster.core.readNamespacedSecret({name: 'ztctl-admin', namespace})
  const admin = ControllerClient.fromIdentity({...parseIdentityFile(Buffer.from(secret.data!['identity.json'], 'base64').toString(), 'admin'), controller: controller.url})
  t.after(() => admin.close())
  const nodeIdentity = await admin.request<{roles: string[]; scope?: {node?: string}; status: string}>('GET', '/v1/identities/node-node-a')
  assert.deepEqual([nodeIdentity.roles, nodeIdentity.scope, nodeIdentity.status], [['node'], {node: 'node-a'}, 'active'])
  const agents = await waitUntil('the agent online', async () => {
    const list = await admin.request<{agents: {name: string; online: boolean}[]}>('GET', '/v1/agents')
    return list.agents.find((item) => item.name === 'node-node-a' && item.online)
  }, 20_000, 100)
  assert.ok(agents)

  // Renewal: the same call with a fresh token gives the same identity a new certificate; both work.
  const first = await enrollWith(await tokenFor(cluster, namespace, NODE_SA, {pod: agentA}), 'node-a')
  const second = await enrollWith(await tokenFor(cluster, namespace, NODE_SA, {pod: agentA}), 'node-a')
  assert.equal(second.name, 'node-node-a')
  assert.notEqual(certInfo(second.cert).serial, certInfo(first.cert).serial)
  for (const identity of [first, second]) {
    const client = ControllerClient.fromIdentity(identity)
    t.after(() => client.close())
    assert.equal((await client.request<{trustDomain: string}>('GET', '/v1/version')).trustDomain, 'cluster.local')
  }

  // Ten first enrollments of one node at once: one identity, ten working certificates.
  const agentC = await pod(cluster, namespace, 'agent-c', NODE_SA, 'node-c')
  const concurrent = await Promise.all(Array.from({length: 10}, async () => enrollWith(await tokenFor(cluster, namespace, NODE_SA, {pod: agentC}), 'node-c')))
  assert.equal(new Set(concurrent.map((identity) => certInfo(identity.cert).serial)).size, 10)
  const identities = await admin.request<{items: {name: string}[]}>('GET', '/v1/identities')
  assert.equal(identities.items.filter((item) => item.name === 'node-node-c').length, 1)

  // Refused, each in words, and nothing is created for them.
  const otherPod = await pod(cluster, namespace, 'intruder', 'other', 'node-a')
  await refusal(await tokenFor(cluster, namespace, 'other', {pod: otherPod}), 'node-a', 'ZT_ERR_KUBE_WRONG_ACCOUNT', new RegExp(`belongs to system:serviceaccount:${namespace}:other; only system:serviceaccount:${namespace}:ztctl-node`))
  const genuine = await tokenFor(cluster, namespace, NODE_SA, {pod: agentA})
  await refusal(genuine, 'node-b', 'ZT_ERR_KUBE_WRONG_NODE', /runs on node node-a, not on node-b/)
  const clusterKey = createPrivateKey(await readFile(path.join(cluster.stateDir, 'pki', 'sa.key')))
  const past = Math.floor(Date.now() / 1000) - 3600
  await refusal(resign(genuine, clusterKey, (claims) => ({...claims, exp: past, iat: past - 600, nbf: past - 600})), 'node-a', 'ZT_ERR_KUBE_TOKEN_REJECTED', /rejected the ServiceAccount token: .*expired/i)
  const stranger = generateKeyPairSync('ec', {namedCurve: 'P-256'}).privateKey
  await refusal(resign(genuine, stranger, (claims) => claims), 'node-a', 'ZT_ERR_KUBE_TOKEN_REJECTED', /rejected the ServiceAccount token/)
  await refusal(await tokenFor(cluster, namespace, NODE_SA, {audience: 'elsewhere', pod: agentA}), 'node-a', 'ZT_ERR_KUBE_TOKEN_REJECTED', /rejected the ServiceAccount token/)
  await refusal(await tokenFor(cluster, namespace, NODE_SA), 'node-a', 'ZT_ERR_KUBE_TOKEN_UNBOUND', /not bound to a pod/)
  const doomed = await pod(cluster, namespace, 'agent-d', NODE_SA, 'node-d')
  const doomedToken = await tokenFor(cluster, namespace, NODE_SA, {pod: doomed})
  await cluster.core.deleteNamespacedPod({gracePeriodSeconds: 0, name: 'agent-d', namespace})
  await waitUntil('agent-d gone', async () => (await cluster.core.readNamespacedPod({name: 'agent-d', namespace}).then(() => undefined, () => true)), 30_000, 100)
  await refusal(doomedToken, 'node-d', 'ZT_ERR_KUBE_TOKEN_REJECTED', /rejected the ServiceAccount token/)
  await refusal('not.a-token', 'node-a', 'ZT_ERR_KUBE_TOKEN_REJECTED', /rejected the ServiceAccount token|not a JWT/)
  const after = await admin.request<{items: {name: string}[]}>('GET', '/v1/identities')
  assert.deepEqual(after.items.map((item) => item.name).sort(), ['admin', 'node-node-a', 'node-node-c'])

  // An impostor with a valid mesh certificate (an agent's own) gets no token: the pin fails the handshake first.
  let requests = 0
  const impostor = http2.createSecureServer({allowHTTP1: true, ca: second.ca, cert: second.cert, key: second.key})
  impostor.on('request', (_request, response) => {
    requests++
    response.end('{}')
  })
  impostor.listen(0, '127.0.0.1')
  await once(impostor, 'listening')
  t.after(() => impostor.close())
  await assert.rejects(enrollWith(genuine, 'node-a', `https://127.0.0.1:${(impostor.address() as AddressInfo).port}`), (error: unknown) => {
    assert.ok(ZtError.is(error))
    assert.equal(error.code, 'ZT_ERR_CONTROLLER_IMPOSTOR')
    assert.match(error.message, /presented spiffe:\/\/cluster\.local\/identity\/node-node-a, not the controller's spiffe:\/\/cluster\.local\/controller/)
    return true
  })
  assert.equal(requests, 0, 'the impostor never received a request')

  // A refused agent stops with the reason (and exit 4): a pod in CrashLoopBackOff shows it in its log.
  const intruderToken = path.join(dir, 'intruder.token')
  await writeFile(intruderToken, await tokenFor(cluster, namespace, 'other', {pod: otherPod}))
  const refused = spawn(process.execPath, [RUN_JS, 'agent', 'run', '--kubernetes', '--controller', controller.url, '--kube-token-file', intruderToken, '--kube-ca-file', caFile,
    '--hbone', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--metrics', '127.0.0.1:0', '--readiness', '127.0.0.1:0'], {env: {...process.env, NODE_NAME: 'node-a', NO_COLOR: '1'}})
  let refusedErr = ''
  refused.stderr.on('data', (chunk: Buffer) => (refusedErr += chunk.toString()))
  t.after(() => refused.kill('SIGKILL'))
  const [code] = (await once(refused, 'exit')) as [number]
  assert.equal(code, 4, refusedErr)
  assert.match(refusedErr, /only system:serviceaccount:.*:ztctl-node may enroll node agents/)
})

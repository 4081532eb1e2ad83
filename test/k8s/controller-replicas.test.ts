// Two real controller processes (`controller run --store kubernetes`) on one namespace of a real API
// server: started at the same moment they make ONE CA; both serve (a write on one is read on the other);
// the Lease has one holder and /ready says who leads; when the leader is killed the other takes the Lease
// and runs the background writers (it rewrites a deleted admin Secret); a SIGTERMed leader releases the
// Lease so the takeover is immediate.
import assert from 'node:assert/strict'
import {test} from 'node:test'

import {ControllerClient} from '../../src/lib/client/controller-client.js'
import type {IdentityFile} from '../../src/lib/identity/file.js'
import {parseIdentityFile} from '../../src/lib/identity/file.js'
import {type Cluster, K8S_TEST_TIMEOUT_MS, startCluster} from '../helpers/k8s.js'
import {waitUntil} from '../helpers/wait.js'
import {applyCrds, freshNamespace, type KubeController, startKubeController} from './fixtures.js'

const LEASE = '3s,2s,250ms'
const FAST = ['--leader-election', LEASE, '--housekeeping-interval', '300ms']

interface Ready {
  leader: boolean
  ready: boolean
  replica: string
}

async function ready(controller: KubeController): Promise<Ready> {
  const response = await fetch(`${controller.health}/ready`)
  assert.equal(response.status, 200, `${controller.replica} /ready`)
  return (await response.json()) as Ready
}

async function leaseHolder(cluster: Cluster, namespace: string): Promise<string | undefined> {
  const {CoordinationV1Api} = await import('@kubernetes/client-node')
  const lease = await cluster.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({name: 'ztctl-controller', namespace}).catch(() => undefined)
  return lease?.spec?.holderIdentity || undefined
}

async function adminIdentity(cluster: Cluster, namespace: string): Promise<IdentityFile> {
  return waitUntil('Secret ztctl-admin', async () => {
    const secret = await cluster.core.readNamespacedSecret({name: 'ztctl-admin', namespace})
    return parseIdentityFile(Buffer.from(secret.data!['identity.json'], 'base64').toString(), 'ztctl-admin')
  }, 30_000, 100)
}

function clientOf(t: {after(fn: () => void): void}, identity: IdentityFile, controller: KubeController): ControllerClient {
  const client = ControllerClient.fromIdentity({...identity, controller: controller.url})
  t.after(() => client.close())
  return client
}

test('two controller replicas: one CA, both serve, one Lease holder, failover to the other', {timeout: K8S_TEST_TIMEOUT_MS}, async (t) => {
  const cluster = await startCluster(t, {nodes: 0})
  await applyCrds(cluster)
  const namespace = await freshNamespace(t, cluster, 'replicas')
  const [a, b] = await Promise.all([startKubeController(t, cluster, namespace, 'replica-a', FAST), startKubeController(t, cluster, namespace, 'replica-b', FAST)])
  // On a failure, what each replica logged (leadership changes, admin identity, errors) says why.
  const replicas = [a, b]
  let passed = false
  t.after(() => {
    if (!passed) for (const replica of replicas) process.stderr.write(`---- controller ${replica.replica} (pid ${replica.pid}) log tail\n${replica.logs().slice(-20_000)}\n`)
  })

  // Started together, they still agree on one CA: the second create of Secret ztctl-ca lost and read the first.
  const identity = await adminIdentity(cluster, namespace)
  const [clientA, clientB] = [clientOf(t, identity, a), clientOf(t, identity, b)]
  const [versionA, versionB] = await Promise.all([clientA, clientB].map((client) => client.request<{caFingerprint: string}>('GET', '/v1/version')))
  assert.equal(versionA.caFingerprint, versionB.caFingerprint, 'one CA for both replicas')
  const root = await cluster.core.readNamespacedConfigMap({name: 'ztctl-ca-root', namespace})
  assert.equal(root.data!['root-cert.pem'], identity.ca, 'ConfigMap ztctl-ca-root holds the bundle clients trust')

  // One holder; both ready; /ready says which one leads.
  const holder = await waitUntil('a Lease holder', () => leaseHolder(cluster, namespace), 20_000, 100)
  const states = await waitUntil('/ready to agree with the Lease', async () => {
    const both = await Promise.all([ready(a), ready(b)])
    return both.filter((state) => state.leader).length === 1 && both.find((state) => state.leader)!.replica === holder ? both : undefined
  }, 20_000, 100)
  assert.ok(states.every((state) => state.ready), 'a standby replica is ready too')
  const [leader, standby] = holder === 'replica-a' ? [a, b] : [b, a]
  const [leaderClient, standbyClient] = holder === 'replica-a' ? [clientA, clientB] : [clientB, clientA]

  // Both serve: written on one, read on the other at once.
  await standbyClient.request('POST', '/v1/identities', {name: 'web', roles: ['frontend']})
  assert.equal((await leaderClient.request<{name: string}>('GET', '/v1/identities/web')).name, 'web')
  const policy = {action: 'DENY', from: ['@web'], name: 'no-web', ports: [22], services: [], sourceCidrs: []}
  await leaderClient.request('PUT', '/v1/resources/policy/no-web', policy)
  assert.deepEqual((await standbyClient.request<{items: unknown[]}>('GET', '/v1/resources/policy')).items, [policy])

  // The leader dies without a word: the standby takes the Lease once it has not been renewed for its duration.
  const killedAt = Date.now()
  await leader.kill9()
  await waitUntil('the standby to take the Lease', async () => ((await leaseHolder(cluster, namespace)) === standby.replica ? true : undefined), 30_000, 50)
  const failoverMs = Date.now() - killedAt
  await waitUntil('the standby to say it leads', async () => ((await ready(standby)).leader ? true : undefined), 10_000, 50)
  t.diagnostic(`failover after kill -9: ${failoverMs} ms (Lease ${LEASE})`)
  assert.ok(failoverMs < 3000 + 2000, `failover took ${failoverMs} ms`)

  // The new leader runs the background writers: a deleted admin Secret comes back, with a working identity.
  await cluster.core.deleteNamespacedSecret({name: 'ztctl-admin', namespace})
  const fresh = await adminIdentity(cluster, namespace)
  assert.notEqual(fresh.cert, identity.cert)
  const freshClient = clientOf(t, fresh, standby)
  assert.deepEqual((await freshClient.request<{items: {name: string}[]}>('GET', '/v1/identities')).items.map((item) => item.name).sort(), ['admin', 'web'])

  // The killed replica comes back as a standby; a SIGTERMed leader hands the Lease over at once.
  const again = await startKubeController(t, cluster, namespace, leader.replica, FAST)
  replicas.push(again)
  await waitUntil('the restarted replica to be ready', async () => ((await ready(again)).ready ? true : undefined), 20_000, 100)
  assert.equal((await ready(again)).leader, false)
  assert.equal(await leaseHolder(cluster, namespace), standby.replica)
  // Timed from the signal, not from the exit: the stopping process releases the Lease first, then drains
  // the clients' sessions.
  const stoppedAt = Date.now()
  const stopping = standby.stop()
  await waitUntil('the restarted replica to take the released Lease', async () => ((await leaseHolder(cluster, namespace)) === again.replica ? true : undefined), 10_000, 25)
  const handoverMs = Date.now() - stoppedAt
  await stopping
  t.diagnostic(`handover after SIGTERM (Lease released): ${handoverMs} ms`)
  assert.ok(handoverMs < failoverMs, `a released Lease is taken sooner (${handoverMs} ms) than an expired one (${failoverMs} ms)`)
  assert.ok((await ready(again)).leader || (await waitUntil('leader flag', async () => ((await ready(again)).leader ? true : undefined), 5000, 50)))
  passed = true
})

// install, verify-install, upgrade, prune, uninstall and purge through the CLI on a real cluster (real
// kubelet, real pods running our image), from an empty cluster back to exactly the objects it had before.
// Each step's time on this cluster is reported as a diagnostic (docs/kubernetes.md quotes them).
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'

import {parseAllDocuments} from 'yaml'

import {CRD_KINDS} from '../../src/lib/kube/crds.js'
import {connectKube, type KubeClient} from '../../src/lib/kube/rest.js'
import {runCli} from '../helpers/controller.js'
import {K8S_TEST_TIMEOUT_MS, nodeValues, startCluster, ztctlImage} from '../helpers/k8s.js'
import {waitUntil} from '../helpers/wait.js'

const NS = 'ztctl-system'
// Kinds whose objects change on their own (heartbeats, events, endpoint controllers): compared by existence only.
const VOLATILE = new Set(['Event', 'Lease', 'Node', 'Endpoints', 'EndpointSlice'])

interface Listed {
  labels: Record<string, string>
  resourceVersion: string
  uid: string
}

/** Every object of every listable kind in the cluster, by kind/namespace/name. */
async function snapshot(kube: KubeClient): Promise<Map<string, Listed>> {
  interface Resource {kind: string; name: string; verbs: string[]}
  const groups = await kube.request<{groups: {preferredVersion: {groupVersion: string}}[]}>('GET', '/apis')
  const versions = ['v1', ...groups.groups.map((group) => group.preferredVersion.groupVersion)]
  const out = new Map<string, Listed>()
  for (const version of versions) {
    const base = version === 'v1' ? '/api/v1' : `/apis/${version}`
    const {resources} = await kube.request<{resources: Resource[]}>('GET', base)
    for (const resource of resources.filter((r) => !r.name.includes('/') && r.verbs.includes('list'))) {
      const list = await kube.request<{items: {metadata: {labels?: Record<string, string>; name: string; namespace?: string; resourceVersion: string; uid: string}}[]}>('GET', `${base}/${resource.name}`)
      for (const {metadata} of list.items) {
        out.set(`${resource.kind}/${metadata.namespace ?? ''}/${metadata.name}`, {labels: metadata.labels ?? {}, resourceVersion: metadata.resourceVersion, uid: metadata.uid})
      }
    }
  }

  return out
}

/** Objects that are new, gone, or (for stable kinds) changed since `before`. */
function compare(before: Map<string, Listed>, after: Map<string, Listed>): {added: string[]; changed: string[]; removed: string[]} {
  const kind = (key: string) => key.split('/')[0]
  const added = [...after.keys()].filter((key) => !before.has(key) && !VOLATILE.has(kind(key)))
  const removed = [...before.keys()].filter((key) => !after.has(key) && !VOLATILE.has(kind(key)))
  const changed = [...before.keys()].filter((key) => after.has(key) && !VOLATILE.has(kind(key))
    && (after.get(key)!.uid !== before.get(key)!.uid || after.get(key)!.resourceVersion !== before.get(key)!.resourceVersion))
  return {added, changed, removed}
}

// (Endpoints and EndpointSlices copy their Service's labels: they are the endpoint controllers', not install's.)
const installed = (listing: Map<string, Listed>) => [...listing].filter(([key, object]) => object.labels['ztctl.io/origin'] === 'install' && !VOLATILE.has(key.split('/')[0]))

test('install --profile ambient, verify-install, upgrade, prune, uninstall and --purge on a real cluster', {timeout: K8S_TEST_TIMEOUT_MS}, async (t) => {
  const image = await ztctlImage()
  const cluster = await startCluster(t, {nodes: 1})
  await cluster.importImage(image.tar)
  const [node] = cluster.nodes
  const home = await mkdtemp(path.join(tmpdir(), 'ztctl-kinstall-'))
  t.after(() => rm(home, {force: true, recursive: true}))
  const kube = await connectKube({kubeconfig: cluster.kubeconfigPath})
  t.after(() => kube.close())
  const env = {...process.env, HOME: home, KUBECONFIG: cluster.kubeconfigPath, NO_COLOR: '1', ZTCTL_HOME: home}
  const timings: Record<string, number> = {}
  const ztctl = async (step: string, args: string[]) => {
    const started = Date.now()
    const result = await runCli(args, env, {timeoutMs: 600_000})
    timings[step] = Date.now() - started
    return {...result, out: result.stdout + result.stderr}
  }

  // The harness node keeps its CNI directories in its state dir, not in /etc/cni and /opt/cni.
  const values = nodeValues(node)
  // Objects of a user, there before install: they must come out untouched.
  await cluster.core.createNamespace({body: {metadata: {name: 'user-app'}}})
  await cluster.core.createNamespacedConfigMap({body: {data: {keep: 'me'}, metadata: {labels: {'app.kubernetes.io/part-of': 'ztctl'}, name: 'settings'}}, namespace: 'user-app'})
  // What the controller-manager adds to a new namespace by itself, before the listing of "before".
  await waitUntil('the default ServiceAccount token of user-app', () => cluster.core.readNamespacedServiceAccount({name: 'default', namespace: 'user-app'}).then((sa) => (sa.secrets?.length ? sa : undefined)), 60_000)
  await waitUntil('kube-root-ca.crt in user-app', () => cluster.core.readNamespacedConfigMap({name: 'kube-root-ca.crt', namespace: 'user-app'}), 60_000)
  const before = await snapshot(kube)

  const precheck = await ztctl('precheck', ['precheck', ...values])
  assert.equal(precheck.code, 0, precheck.out)
  assert.match(precheck.stdout, /✔ Kubernetes v1\.20\.2/)
  assert.match(precheck.stdout, /✔ No issues found when checking the cluster/)

  const unconfirmed = await ztctl('install without -y', ['install', ...values])
  assert.equal(unconfirmed.code, 2, unconfirmed.out)
  assert.match(unconfirmed.stderr, /ZT_ERR_CONFIRM_NEEDED/)
  assert.match(unconfirmed.stderr, /pass -y/)
  const dryRun = await ztctl('install --dry-run (empty cluster)', ['install', '--dry-run', ...values])
  assert.equal(dryRun.code, 0, dryRun.out)
  assert.match(dryRun.stdout, /\+\s+name: ztctl-node/)
  assert.match(dryRun.stdout, /Dry run: \d+ created; nothing was changed\./)
  assert.deepEqual(compare(before, await snapshot(kube)), {added: [], changed: [], removed: []}, 'neither a refused install nor a dry run changes anything')

  await t.test('install --profile ambient -y from an empty cluster prints every ✔ line and the node agent is Running and Ready', async () => {
    const result = await ztctl('install', ['install', '--profile', 'ambient', '-y', ...values])
    assert.equal(result.code, 0, result.out)
    for (const line of ['✔ Core installed', '✔ Controller installed', '✔ CNI installed', '✔ Node agents installed', '✔ Installation complete']) {
      assert.ok(result.stdout.includes(line), `${line} in\n${result.stdout}`)
    }

    const pods = await cluster.core.listNamespacedPod({labelSelector: 'app.kubernetes.io/name=ztctl-node', namespace: NS})
    assert.equal(pods.items.length, 1)
    const [agent] = pods.items
    assert.equal(agent.status?.phase, 'Running')
    assert.equal(agent.spec?.nodeName, node.name)
    assert.ok(agent.status?.conditions?.some((condition) => condition.type === 'Ready' && condition.status === 'True'), JSON.stringify(agent.status))
  })

  await t.test('verify-install: one ✔ per resource, the controller answering, counts, exit 0', async () => {
    const result = await ztctl('verify-install', ['verify-install'])
    assert.equal(result.code, 0, result.out)
    assert.match(result.stdout, /^✔ DaemonSet: ztctl-node\.ztctl-system checked successfully \(1\/1 nodes ready\)$/m)
    assert.match(result.stdout, /^✔ DaemonSet: ztctl-cni\.ztctl-system checked successfully/m)
    assert.match(result.stdout, /^✔ Deployment: ztctl-controller\.ztctl-system checked successfully \(1\/1 replicas ready\)$/m)
    assert.match(result.stdout, /^✔ CustomResourceDefinition: policies\.ztctl\.io checked successfully$/m)
    assert.match(result.stdout, /^✔ Controller: ztctl-controller-\S+\.ztctl-system answers \/ready/m)
    assert.match(result.stdout, new RegExp(`^Checked ${CRD_KINDS.length} custom resource definitions$`, 'm'))
    assert.match(result.stdout, /^Checked 2 DaemonSets$/m)
    assert.match(result.stdout, /^✔ ztctl \(profile ambient\) is installed and verified successfully$/m)
    assert.doesNotMatch(result.stdout, /✘/)
    const json = JSON.parse((await ztctl('verify-install -o json', ['verify-install', '-o', 'json'])).stdout) as {checks: {ok: boolean}[]; failed: number}
    assert.equal(json.failed, 0)
    assert.ok(json.checks.length >= 20)
  })

  await t.test('the CLI reaches the installed controller through the context install wrote; deleting the controller pod keeps every identity, policy and tunnel', async () => {
    const cli = async <T>(step: string, args: string[]): Promise<T> => {
      const result = await ztctl(step, [...args, '-o', 'json'])
      assert.equal(result.code, 0, `ztctl ${args.join(' ')}\n${result.out}`)
      return JSON.parse(result.stdout) as T
    }

    const contexts = await cli<{current: boolean; kind?: string; name: string}[]>('context list', ['context', 'list'])
    assert.deepEqual(contexts.map((context) => [context.name, context.kind, context.current]), [[`k8s-${kube.context}`, 'kubernetes', true]])
    await cli('identity create', ['identity', 'create', 'web', '-a', 'frontend', '--out', path.join(home, 'web.jwt')])
    await cli('policy create', ['policy', 'create', 'no-guests', '--action', 'DENY', '--from', '#guest', '--port', '5432'])
    // web's agent does not run: the tunnel is stored, there is nothing to wait for.
    await cli('tunnel open', ['tunnel', 'open', 'inbound', 'tcp/db', '--agent', 'web', '--listen', '127.0.0.1:7000', '--no-wait'])
    const state = async (when: string) => ({
      identities: (await cli<{name: string; roles: string[]}[]>(`identity list (${when})`, ['identity', 'list'])).map(({name, roles}) => ({name, roles})).sort((a, b) => a.name.localeCompare(b.name)),
      policies: (await cli<{items: {name: string}[]}>(`policy list (${when})`, ['policy', 'list'])).items,
      tunnels: (await cli<{tunnels: unknown[]}>(`tunnel list (${when})`, ['tunnel', 'list'])).tunnels,
    })
    const before = await state('before')
    // The node agent enrolled with its ServiceAccount token (TokenReview) as node-<its node>.
    assert.deepEqual(before.identities.map((identity) => identity.name), ['admin', `node-${node.name}`, 'web'])
    assert.deepEqual(before.identities.find((identity) => identity.name === `node-${node.name}`)!.roles, ['node'])
    assert.deepEqual(before.policies.map((policy) => policy.name), ['no-guests'])
    assert.equal(before.tunnels.length, 1)
    const online = await waitUntil('the node agent online at the controller', async () => {
      // In a kubernetes context proxy-status lists the node-agent pods, each with its sync state at the controller.
      const status = await cli<{agents: {agent: string; node: string; sync?: {online: boolean}}[]}>('proxy-status', ['proxy-status'])
      return status.agents.find((agent) => agent.agent === `node-${node.name}` && agent.node === node.name && agent.sync?.online)
    }, 60_000, 500)
    assert.ok(online)

    const [pod] = (await cluster.core.listNamespacedPod({labelSelector: 'app.kubernetes.io/name=ztctl-controller', namespace: NS})).items
    const started = Date.now()
    await cluster.core.deleteNamespacedPod({name: pod.metadata!.name!, namespace: NS})
    await waitUntil('a new controller pod Ready', async () => (await cluster.core.listNamespacedPod({labelSelector: 'app.kubernetes.io/name=ztctl-controller', namespace: NS})).items
      .find((other) => other.metadata?.name !== pod.metadata!.name && !other.metadata?.deletionTimestamp
        && other.status?.conditions?.some((condition) => condition.type === 'Ready' && condition.status === 'True')), 180_000, 200)
    timings['controller pod deleted → replacement Ready'] = Date.now() - started
    assert.deepEqual(await state('after the restart'), before, 'the new controller pod serves the same state')
  })

  await t.test('a second install with the same values changes nothing and says so; other values change only those objects', async () => {
    const first = new Map(installed(await snapshot(kube)))
    const again = await ztctl('install again (same values)', ['install', '-y', ...values])
    assert.equal(again.code, 0, again.out)
    assert.match(again.stdout, /No changes: the cluster already runs profile ambient with these values/)
    assert.match(again.stdout, /✔ Node agents installed \(unchanged\)/)
    const same = new Map(installed(await snapshot(kube)))
    assert.deepEqual([...same].map(([key, object]) => [key, object.resourceVersion]), [...first].map(([key, object]) => [key, object.resourceVersion]), 'nothing was written')

    const upgrade = await ztctl('install with other values', ['install', '-y', ...values, '--set', 'controller.resources.requests.memory=160Mi'])
    assert.equal(upgrade.code, 0, upgrade.out)
    assert.match(upgrade.stdout, /✔ Controller installed \(1 configured, 1 unchanged\)/)
    assert.match(upgrade.stdout, /✔ CNI installed \(unchanged\)/)
    const changed = [...installed(await snapshot(kube))].filter(([key, object]) => first.get(key)?.resourceVersion !== object.resourceVersion).map(([key]) => key)
    assert.deepEqual(changed.sort(), ['ConfigMap/ztctl-system/ztctl-install', 'Deployment/ztctl-system/ztctl-controller'])
    const deployment = await cluster.apps.readNamespacedDeployment({name: 'ztctl-controller', namespace: NS})
    assert.equal(deployment.spec?.template.spec?.containers[0].resources?.requests?.memory, '160Mi')
    assert.equal(deployment.status?.readyReplicas, 1, 'install waited for the new replica')
  })

  await t.test('values that no longer render an object prune it', async () => {
    const result = await ztctl('install pruning the CNI', ['install', '-y', ...values, '--set', 'controller.resources.requests.memory=160Mi', '--set', 'cni.enabled=false'])
    assert.equal(result.code, 0, result.out)
    // The CNI agent's DaemonSet, its ServiceAccount and its RBAC (pods and namespaces to read, its own DaemonSet).
    const cniObjects = ['ClusterRole ztctl-cni', 'ClusterRoleBinding ztctl-cni', 'DaemonSet ztctl-system/ztctl-cni', 'Role ztctl-system/ztctl-cni', 'RoleBinding ztctl-system/ztctl-cni', 'ServiceAccount ztctl-system/ztctl-cni']
    const pruned = /Pruned what the new values no longer render: (.*)/.exec(result.stdout)
    assert.ok(pruned, result.out)
    assert.deepEqual(pruned[1].split(', ').sort(), cniObjects, result.out)
    const listing = await snapshot(kube)
    for (const object of cniObjects) {
      const [kind, ref] = object.split(' ')
      const key = `${kind}/${ref.includes('/') ? ref : `/${ref}`}`
      assert.equal(listing.has(key), false, `${key} is gone`)
    }
    const pods = await cluster.core.listNamespacedPod({labelSelector: 'app.kubernetes.io/name=ztctl-cni', namespace: NS})
    assert.equal(pods.items.length, 0, 'its pods are gone too')
  })

  await t.test('a node-agent image that does not exist: install stops with ErrImageNeverPull, verify-install prints ✘ for that DaemonSet and exits 1', async () => {
    const broken = await ztctl('install with a missing node-agent image', ['install', '-y', ...values, '--set', 'nodeAgent.image=ztctl.local/does-not-exist:0', '--set', 'image.pullPolicy=Never', '--readiness-timeout', '3m'])
    assert.equal(broken.code, 1, broken.out)
    assert.match(broken.stdout, /✘ Node agents encountered an error: DaemonSet ztctl-system\/ztctl-node is not ready: ztctl-node-\S+ on node \S+: container agent is waiting: ErrImageNeverPull/)
    assert.match(broken.stderr, /ZT_ERR_INSTALL_INCOMPLETE/)
    assert.match(broken.stderr, /kubectl -n ztctl-system describe pod ztctl-node-/)

    const verify = await ztctl('verify-install (broken)', ['verify-install'])
    assert.equal(verify.code, 1, verify.out)
    assert.match(verify.stdout, /^✘ DaemonSet: ztctl-node\.ztctl-system: 0 of 1 pods (updated|ready).*ErrImageNeverPull: Container image "ztctl\.local\/does-not-exist:0" is not present with pull policy of Never/m)
    assert.match(verify.stdout, /^ {4}look at: kubectl -n ztctl-system describe pod ztctl-node-\S+$/m)
    assert.match(verify.stdout, /^✔ Deployment: ztctl-controller\.ztctl-system checked successfully/m, 'the other resources still pass')
    assert.match(verify.stdout, /^✘ \d+ of \d+ checks failed/m)
    const json = JSON.parse((await ztctl('verify-install -o json (broken)', ['verify-install', '-o', 'json'])).stdout) as {checks: {kind: string; message: string; name: string; ok: boolean}[]}
    assert.deepEqual(json.checks.filter((check) => !check.ok).map((check) => `${check.kind}/${check.name}`), ['DaemonSet/ztctl-node'])

    const fixed = await ztctl('install (repaired)', ['install', '-y', ...values])
    assert.equal(fixed.code, 0, fixed.out)
    assert.equal((await ztctl('verify-install (repaired)', ['verify-install'])).code, 0)
  })

  await t.test('uninstall removes what install made and nothing else; --purge removes the CRDs and the run-time state too', async () => {
    const refused = await ztctl('uninstall without -y', ['uninstall'])
    assert.equal(refused.code, 2, refused.out)
    const result = await ztctl('uninstall', ['uninstall', '-y'])
    assert.equal(result.code, 0, result.out)
    assert.match(result.stdout, /✔ Node agents removed/)
    assert.match(result.stdout, /✔ Uninstall complete/)
    assert.match(result.stdout, new RegExp(`Context k8s-${kube.context} deleted`))
    const contexts = await ztctl('context list (after uninstall)', ['context', 'list', '-o', 'json'])
    assert.deepEqual(JSON.parse(contexts.stdout), [], 'the context install wrote is gone with the controller')
    const after = await snapshot(kube)
    const diff = compare(before, after)
    assert.deepEqual(diff.changed, [], 'objects that existed before are untouched')
    assert.deepEqual(diff.removed, [])
    const leftByInstall = installed(after).map(([key]) => key)
    assert.ok(leftByInstall.every((key) => key.startsWith('CustomResourceDefinition/') || key === `Namespace//${NS}`), leftByInstall.join(', '))
    assert.equal(leftByInstall.filter((key) => key.startsWith('CustomResourceDefinition/')).length, CRD_KINDS.length, 'the CRDs are kept')
    // Everything else that is new lives in the kept namespace and was made at run time, not by install.
    for (const key of diff.added) {
      // The kept CRDs, their namespace, and the APIService the API server registers for the CRDs' group.
      if (key.startsWith('CustomResourceDefinition/') || key === `Namespace//${NS}` || key === 'APIService//v1alpha1.ztctl.io') continue
      assert.ok(key.split('/')[1] === NS && after.get(key)!.labels['ztctl.io/origin'] !== 'install', `unexpected ${key}`)
    }

    if (after.has(`Namespace//${NS}`)) assert.match(result.stdout, /Namespace ztctl-system: it holds /)

    const purge = await ztctl('uninstall --purge', ['uninstall', '--purge', '-y'])
    assert.equal(purge.code, 0, purge.out)
    assert.deepEqual(compare(before, await snapshot(kube)), {added: [], changed: [], removed: []}, 'back to exactly the objects of before')
  })

  await t.test('every object of every profile passes the API server\'s server-side dry run', async () => {
    await cluster.core.createNamespace({body: {metadata: {name: NS}}})
    await cluster.core.createNamespace({body: {metadata: {name: 'ztctl-demo'}}})
    for (const profile of ['ambient', 'minimal', 'demo']) {
      const generated = await ztctl(`manifest generate --profile ${profile}`, ['manifest', 'generate', '--profile', profile])
      assert.equal(generated.code, 0, generated.out)
      const objects = parseAllDocuments(generated.stdout).map((document) => document.toJS() as {kind: string; metadata: {name: string; namespace?: string}})
      const {objectPath} = await import('../../src/lib/kube/install/resources.js')
      for (const object of objects) {
        const accepted = await kube.request<{metadata: {name: string}}>('PATCH', objectPath(object), {
          body: object, contentType: 'application/apply-patch+yaml', query: {dryRun: 'All', fieldManager: 'ztctl-test', force: true},
        })
        assert.equal(accepted.metadata.name, object.metadata.name)
      }
    }

    await cluster.core.deleteNamespace({name: 'ztctl-demo'})
    await cluster.core.deleteNamespace({name: NS})
  })

  t.diagnostic(`step timings (ms) on this cluster: ${JSON.stringify(timings)}`)
})

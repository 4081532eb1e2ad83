// Profiles, values and manifests through the real CLI, without a cluster: deterministic YAML, the contract's
// names and args, --set and -f typed and checked (a typo names the key and the closest valid one), and a
// clear error with a documented exit code when there is no kubeconfig at all.
import assert from 'node:assert/strict'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'

import {parseAllDocuments} from 'yaml'

import {CRD_KINDS} from '../../src/lib/kube/crds.js'
import {runCli} from '../helpers/controller.js'

const env = {...process.env, NO_COLOR: '1'}
const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) => runCli(args, {...env, ...extra})

interface Obj {
  [field: string]: unknown
  kind: string
  metadata: {labels?: Record<string, string>; name: string; namespace?: string}
  spec?: Record<string, unknown>
}

async function generate(args: string[]): Promise<Obj[]> {
  const result = await cli(['manifest', 'generate', ...args])
  assert.equal(result.code, 0, result.stderr)
  return parseAllDocuments(result.stdout).map((document) => document.toJS() as Obj)
}

const find = (objects: Obj[], kind: string, name: string) => objects.find((object) => object.kind === kind && object.metadata.name === name)
const container = (object: Obj | undefined) =>
  ((object?.spec as {template: {spec: {containers: Record<string, unknown>[]}}}).template.spec.containers[0]) as {args: string[]; image: string; imagePullPolicy: string; resources: {requests: Record<string, string>}}

test('manifest generate: deterministic, in dependency order, with the names, labels and args of K8S-CONTRACT.md', async () => {
  const first = await cli(['manifest', 'generate', '--profile', 'ambient'])
  const second = await cli(['manifest', 'generate', '--profile', 'ambient'])
  assert.equal(first.code, 0, first.stderr)
  assert.equal(first.stdout, second.stdout, 'the same values give the same bytes')
  const objects = parseAllDocuments(first.stdout).map((document) => document.toJS() as Obj)
  const kinds = objects.map((object) => object.kind)
  // CRDs → namespace → RBAC → config → controller → CNI → node agents
  assert.deepEqual([...new Set(kinds)], ['CustomResourceDefinition', 'Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'ConfigMap', 'Service', 'Deployment', 'DaemonSet'])
  assert.equal(kinds.filter((kind) => kind === 'CustomResourceDefinition').length, CRD_KINDS.length)
  assert.deepEqual(objects.filter((object) => object.kind === 'DaemonSet').map((object) => object.metadata.name), ['ztctl-cni', 'ztctl-node'])
  for (const object of objects) {
    assert.equal(object.metadata.labels?.['app.kubernetes.io/part-of'], 'ztctl', `${object.kind} ${object.metadata.name}`)
    assert.equal(object.metadata.labels?.['app.kubernetes.io/managed-by'], 'ztctl')
    assert.equal(object.metadata.labels?.['ztctl.io/install'], 'default')
    assert.equal(object.metadata.labels?.['ztctl.io/origin'], 'install')
    if (object.kind !== 'CustomResourceDefinition' && object.kind !== 'Namespace' && !object.kind.startsWith('Cluster')) assert.equal(object.metadata.namespace, 'ztctl-system')
  }

  const controller = container(find(objects, 'Deployment', 'ztctl-controller'))
  assert.equal(controller.image, 'ztctl.local/ztctl:0.1.0')
  assert.deepEqual(controller.args.slice(0, 9), ['controller', 'run', '--store', 'kubernetes', '--listen', '0.0.0.0:15012', '--health', '0.0.0.0:15014', '--advertise'])
  assert.equal(controller.args[9], 'https://ztctl-controller.ztctl-system.svc:15012')
  const ports = (find(objects, 'Service', 'ztctl-controller')!.spec as {ports: {name: string; port: number}[]}).ports
  assert.deepEqual(ports.map((port) => `${port.name}:${port.port}`), ['https-control:15012', 'http-health:15014'])
  const agent = container(find(objects, 'DaemonSet', 'ztctl-node'))
  assert.deepEqual(agent.args, ['agent', 'run', '--kubernetes', '--controller', 'https://$(ZTCTL_CONTROLLER_SERVICE_HOST):$(ZTCTL_CONTROLLER_SERVICE_PORT)',
    '--hbone', '0.0.0.0:15008', '--admin', '127.0.0.1:15000', '--metrics', '0.0.0.0:15020', '--readiness', '0.0.0.0:15021',
    '--inpod-socket', '/var/run/ztctl/node/inpod.sock', '--inpod-state-dir', '/var/run/ztctl/node/inpod'])
  const cniAgent = container(find(objects, 'DaemonSet', 'ztctl-cni'))
  assert.deepEqual(cniAgent.args.slice(cniAgent.args.indexOf('--run-dir')), ['--run-dir', '/var/run/ztctl/node', '--netns-dir', '/var/run/netns', '--exclude-namespace', 'kube-system', '--exclude-namespace', 'ztctl-system'])
  assert.deepEqual(objects.filter((object) => object.metadata.name === 'ztctl-cni').map((object) => object.kind).sort(), ['ClusterRole', 'ClusterRoleBinding', 'DaemonSet', 'Role', 'RoleBinding', 'ServiceAccount'])
  const volumes = JSON.stringify((find(objects, 'DaemonSet', 'ztctl-node')!.spec as {template: unknown}).template)
  assert.match(volumes, /"audience":"ztctl","expirationSeconds":3600,"path":"token"/)
  assert.match(volumes, /"name":"ztctl-ca-root","optional":true/)
  const cni = find(objects, 'DaemonSet', 'ztctl-cni')!.spec as {template: {spec: {hostNetwork: boolean}}}
  assert.equal(cni.template.spec.hostNetwork, true)

  // minimal: the controller only; demo: ambient plus the sample apps in their own namespace
  const minimal = await generate(['--profile', 'minimal'])
  assert.equal(minimal.filter((object) => object.kind === 'DaemonSet').length, 0)
  assert.ok(find(minimal, 'Deployment', 'ztctl-controller'))
  const demo = await generate(['--profile', 'demo'])
  assert.ok(find(demo, 'Namespace', 'ztctl-demo'))
  assert.deepEqual(demo.filter((object) => object.metadata.namespace === 'ztctl-demo').map((object) => `${object.kind}/${object.metadata.name}`), ['Service/web', 'Deployment/client', 'Deployment/web'])
})

test('manifest generate: a $(NODE_NAME) path component names each node\'s directories: run and netns dirs mount the directory above, conf and bin dirs only the node\'s own (subPathExpr)', async () => {
  const root = '/srv/nodes'
  const objects = await generate(['--profile', 'ambient', '--set', `cni.confDir=${root}/$(NODE_NAME)/net.d`, '--set', `cni.binDir=${root}/$(NODE_NAME)/bin`,
    '--set', 'cni.netnsDir=/srv/cri/$(NODE_NAME)/netns', '--set', 'cni.runDir=/srv/run/$(NODE_NAME)'])
  type PodSpec = {containers: {args: string[]; volumeMounts: {name: string}[]}[]; volumes: {hostPath?: {path: string}; name: string}[]}
  const podOf = (name: string) => (find(objects, 'DaemonSet', name)!.spec as {template: {spec: PodSpec}}).template.spec
  const cni = podOf('ztctl-cni')
  const node = podOf('ztctl-node')
  const hostPaths = (spec: PodSpec) => Object.fromEntries(spec.volumes.filter((volume) => volume.hostPath).map((volume) => [volume.name, volume.hostPath!.path]))
  assert.deepEqual(hostPaths(cni), {'cni-bin': root, 'cni-conf': root, netns: '/srv/cri', 'ztctl-run': '/srv/run'})
  assert.deepEqual(hostPaths(node), {netns: '/srv/cri', 'ztctl-run': '/srv/run'})
  const mounts = (spec: PodSpec) => spec.containers[0].volumeMounts.filter((mount) => ['cni-bin', 'cni-conf', 'netns', 'ztctl-run'].includes(mount.name))
  assert.deepEqual(mounts(cni), [
    {mountPath: '/host/cni/net.d', name: 'cni-conf', subPathExpr: '$(NODE_NAME)/net.d'},
    {mountPath: '/host/cni/bin', name: 'cni-bin', subPathExpr: '$(NODE_NAME)/bin'},
    {mountPath: '/srv/run', name: 'ztctl-run'},
    {mountPath: '/srv/cri', mountPropagation: 'HostToContainer', name: 'netns', readOnly: true},
  ])
  assert.deepEqual(mounts(node), mounts(cni).slice(2))
  // the kubelet expands $(NODE_NAME) in args from the pods' NODE_NAME
  const args = cni.containers[0].args
  assert.deepEqual(args.slice(args.indexOf('--run-dir'), args.indexOf('--exclude-namespace')), ['--run-dir', '/srv/run/$(NODE_NAME)', '--netns-dir', '/srv/cri/$(NODE_NAME)/netns'])
  assert.deepEqual(node.containers[0].args.slice(-4), ['--inpod-socket', '/srv/run/$(NODE_NAME)/inpod.sock', '--inpod-state-dir', '/srv/run/$(NODE_NAME)/inpod'])
  for (const spec of [cni, node]) assert.ok(JSON.stringify(spec.containers[0]).includes('"name":"NODE_NAME","valueFrom":{"fieldRef"'), 'NODE_NAME from the downward API')
})

test('values: typed --set (numbers, booleans, lists, escaped map keys), -f files merged in order, then --set', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ztctl-values-'))
  t.after(() => rm(dir, {force: true, recursive: true}))
  const a = path.join(dir, 'a.yaml')
  const b = path.join(dir, 'b.yaml')
  await writeFile(a, 'controller:\n  replicas: 3\nimage:\n  repository: registry.example/ztctl\n  tag: "1.10"\n')
  await writeFile(b, 'controller:\n  replicas: 2\n')
  const objects = await generate([
    '-f', a, '-f', b, '--set', 'cni.enabled=false,image.pullSecrets={one,two}', '--set', 'image.pullSecrets[1]=three',
    '--set', 'nodeAgent.nodeSelector.kubernetes\\.io/os=linux', '--set', 'controller.resources.requests.memory=200Mi', '-n', 'mesh',
  ])
  const deployment = find(objects, 'Deployment', 'ztctl-controller')!
  assert.equal((deployment.spec as {replicas: number}).replicas, 2, 'the later file wins')
  assert.equal(deployment.metadata.namespace, 'mesh')
  assert.equal(container(deployment).image, 'registry.example/ztctl:1.10')
  assert.equal(container(deployment).resources.requests.memory, '200Mi')
  assert.equal(find(objects, 'DaemonSet', 'ztctl-cni'), undefined)
  const pod = (find(objects, 'DaemonSet', 'ztctl-node')!.spec as {template: {spec: {imagePullSecrets: {name: string}[]; nodeSelector: Record<string, string>}}}).template.spec
  assert.deepEqual(pod.imagePullSecrets, [{name: 'one'}, {name: 'three'}])
  assert.deepEqual(pod.nodeSelector, {'kubernetes.io/os': 'linux'})

  // a typo names the key and the closest valid one; exit 2 (usage)
  const typo = await cli(['manifest', 'generate', '--set', 'controller.replica=2'])
  assert.equal(typo.code, 2)
  assert.match(typo.stderr, /ZT_ERR_UNKNOWN_VALUE.*"controller\.replica"/)
  assert.match(typo.stderr, /did you mean controller\.replicas\?/)
  const wrongType = await cli(['manifest', 'generate', '--set', 'nodeAgent.enabled=yes'])
  assert.equal(wrongType.code, 2)
  assert.match(wrongType.stderr, /nodeAgent\.enabled must be true or false, not "yes"/)
  const wrongChoice = await cli(['install', '--set', 'image.pullPolicy=never', '--dry-run'])
  assert.equal(wrongChoice.code, 2, 'values are checked before any cluster is looked for')
  assert.match(wrongChoice.stderr, /did you mean image\.pullPolicy=Never\?/)
  await writeFile(a, 'nodeAgent:\n  resources:\n    requests:\n      cpus: 1\n')
  const fileTypo = await cli(['manifest', 'generate', '-f', a])
  assert.equal(fileTypo.code, 2)
  assert.match(fileTypo.stderr, new RegExp(`${a.replaceAll('.', '\\.')}: unknown value "nodeAgent\\.resources\\.requests\\.cpus"`))
  assert.match(fileTypo.stderr, /did you mean nodeAgent\.resources\.requests\.cpu\?/)
  await writeFile(a, 'image:\n  tag: 1.10\n')
  const unquoted = await cli(['manifest', 'generate', '-f', a])
  assert.equal(unquoted.code, 2)
  assert.match(unquoted.stderr, /image\.tag must be a string, not 1\.1/)
  assert.match(unquoted.stderr, /quote it/)
  const noProfile = await cli(['manifest', 'generate', '--profile', 'ambiant'])
  assert.equal(noProfile.code, 3)
  assert.match(noProfile.stderr, /did you mean ambient\?/)
})

test('profile list, dump and diff', async () => {
  const list = await cli(['profile', 'list'])
  assert.equal(list.code, 0, list.stderr)
  assert.match(list.stdout, /^NAME\s+DESCRIPTION/)
  assert.match(list.stdout, /ambient \(default\)/)
  assert.match(list.stdout, /\ndemo\s/)
  assert.match(list.stdout, /\nminimal\s/)
  const dump = JSON.parse((await cli(['profile', 'dump', 'minimal', '-o', 'json'])).stdout) as {cni: {enabled: boolean}; image: {tag: string}; namespace: string}
  assert.equal(dump.cni.enabled, false)
  assert.equal(dump.image.tag, '0.1.0')
  assert.equal(dump.namespace, 'ztctl-system')
  const diff = await cli(['profile', 'diff', 'minimal', 'ambient', '--json'])
  assert.deepEqual((JSON.parse(diff.stdout) as {changes: {key: string}[]}).changes.map((change) => change.key), ['cni.enabled', 'nodeAgent.enabled'])
  const text = await cli(['profile', 'diff', 'minimal', 'ambient'])
  assert.match(text.stdout, /^-\s+enabled: false$/m)
  assert.match(text.stdout, /^\+\s+enabled: true$/m)
})

test('no kubeconfig: a clear error and exit code 2, never a silent localhost:8080', async (t) => {
  const home = await mkdtemp(path.join(tmpdir(), 'ztctl-nokube-'))
  t.after(() => rm(home, {force: true, recursive: true}))
  const bare = {HOME: home, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: ''}
  for (const args of [['install', '-y'], ['verify-install'], ['uninstall', '-y'], ['precheck']]) {
    const result = await cli(args, bare)
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
    assert.match(result.stderr, /ZT_ERR_NO_KUBECONFIG/)
    assert.match(result.stderr, /--kubeconfig/)
    assert.doesNotMatch(result.stderr, /localhost:8080/)
  }

  const missing = await cli(['verify-install', '--kubeconfig', path.join(home, 'nope')], bare)
  assert.equal(missing.code, 2)
  assert.match(missing.stderr, /nope does not exist/)
  const kubeconfig = path.join(home, 'config')
  await writeFile(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: one, context: {cluster: c, user: u}}]\ncurrent-context: one\n')
  const context = await cli(['verify-install', '--kubeconfig', kubeconfig, '--kube-context', 'onee'], bare)
  assert.equal(context.code, 2)
  assert.match(context.stderr, /no context "onee" \(known: one\)/)
  const refused = await cli(['verify-install', '--kubeconfig', kubeconfig], bare)
  assert.equal(refused.code, 5, 'an API server that does not answer: unreachable')
  assert.match(refused.stderr, /cannot reach the Kubernetes API server https:\/\/127\.0\.0\.1:1 .*connection refused/)
})

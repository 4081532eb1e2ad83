// ztctl inject: what it adds to each kind of pod template in each mode, what it leaves alone, and how it
// refuses garbage — on manifests as kubectl writes them; plus the command itself (file and stdin).
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {Readable} from 'node:stream'
import {describe, test} from 'node:test'

import {parseAllDocuments} from 'yaml'

import {injectManifests, readManifestInput} from '../../src/lib/kube/inject.js'
import {RUN_JS} from '../helpers/controller.js'

// `kubectl create deployment web --image=nginx --dry-run=client -o yaml`, plus a Service and a comment.
const DEPLOYMENT = `# the shop's web tier
apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: web
  name: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: web
    spec:
      containers:
      - image: nginx
        name: nginx
        resources: {}
status: {}
---
# kept as written
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - port: 80
  selector:
    app: web
`

interface Container {args: string[]; env: unknown[]; image: string; name: string; securityContext: {capabilities: {add?: string[]; drop?: string[]}; runAsUser?: number}}
interface Doc {kind: string; spec: {template: {metadata: {annotations?: Record<string, string>}; spec: {containers: Container[]; initContainers?: Container[]; volumes: {secret?: {secretName: string}}[]}}}}
const docs = (yaml: string): Doc[] => parseAllDocuments(yaml).map((doc) => doc.toJS() as Doc)
const IMAGE = 'ztctl.local/ztctl:0.1.0'

describe('injectManifests', () => {
  test('proxy mode: an unprivileged agent container with the identity Secret, the pod opted out of ambient; other objects byte for byte', () => {
    const result = injectManifests(DEPLOYMENT, 'deploy.yaml', {image: IMAGE, mode: 'proxy', proxyPorts: ['tcp/echo=9000']})
    assert.deepEqual(result.injected, ['Deployment/web'])
    const [deployment, service] = docs(result.yaml)
    const pod = deployment.spec.template
    assert.deepEqual(pod.spec.containers.map((c) => c.name), ['nginx', 'ztctl-agent'])
    const agent = pod.spec.containers[1]
    assert.deepEqual(agent.args, ['agent', 'run', '-i', '/var/run/ztctl/identity/identity.json', '--mode', 'proxy', '--admin', '127.0.0.1:15000', '--advertise', '$(POD_IP):15008', '--proxy-port', 'tcp/echo=9000'])
    assert.deepEqual(agent.env[0], {name: 'POD_IP', valueFrom: {fieldRef: {fieldPath: 'status.podIP'}}}, 'other agents dial the pod, not 127.0.0.1')
    assert.equal(agent.image, IMAGE)
    assert.deepEqual(agent.securityContext, {allowPrivilegeEscalation: false, capabilities: {drop: ['ALL']}, readOnlyRootFilesystem: true, runAsGroup: 65532, runAsNonRoot: true, runAsUser: 65532})
    assert.deepEqual(pod.spec.volumes, [{name: 'ztctl-identity', secret: {secretName: 'ztctl-web'}}, {emptyDir: {}, name: 'ztctl-home'}, {emptyDir: {}, name: 'ztctl-tmp'}])
    assert.equal(pod.spec.initContainers, undefined, 'no init container in proxy mode')
    assert.deepEqual(pod.metadata.annotations, {'ztctl.io/redirection': 'disabled', 'ztctl.io/sidecar': 'proxy'})
    assert.equal(service.kind, 'Service')
    assert.ok(result.yaml.includes('# kept as written\napiVersion: v1\nkind: Service'), 'an object without a pod template keeps its text and comments')
  })

  test('tproxy mode: root with NET_ADMIN, NET_RAW and NET_BIND_SERVICE only, DNS first in the pod resolv.conf, an init container with NET_ADMIN and NET_RAW', () => {
    const result = injectManifests(DEPLOYMENT, 'deploy.yaml', {identitySecret: 'shop-id', image: IMAGE, mode: 'tproxy'})
    const pod = docs(result.yaml)[0].spec.template
    const agent = pod.spec.containers[1]
    assert.deepEqual(agent.args.slice(4), ['--mode', 'tproxy', '--admin', '127.0.0.1:15000', '--advertise', '$(POD_IP):15008', '--dns-resolv-conf', '/etc/resolv.conf'])
    assert.deepEqual(agent.securityContext.capabilities, {add: ['NET_ADMIN', 'NET_RAW', 'NET_BIND_SERVICE'], drop: ['ALL']})
    assert.equal(agent.securityContext.runAsUser, 0)
    assert.deepEqual(pod.spec.initContainers!.map((c) => [c.name, c.securityContext.capabilities.add]), [['ztctl-init', ['NET_ADMIN', 'NET_RAW']]])
    assert.equal(pod.spec.volumes[0].secret?.secretName, 'shop-id')
    assert.equal(pod.metadata.annotations?.['ztctl.io/sidecar'], 'tproxy')
  })

  test('every workload kind, a Pod and a List; twice is once; the opt-out annotation is honoured', () => {
    const template = {metadata: {labels: {app: 'x'}}, spec: {containers: [{image: 'busybox', name: 'main'}]}}
    const list = {apiVersion: 'v1', items: [
      {apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: {name: 'db'}, spec: {serviceName: 'db', template}},
      {apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: {name: 'logs'}, spec: {template}},
      {apiVersion: 'batch/v1', kind: 'Job', metadata: {name: 'once'}, spec: {template}},
      {apiVersion: 'batch/v1beta1', kind: 'CronJob', metadata: {name: 'nightly'}, spec: {jobTemplate: {spec: {template}}, schedule: '@daily'}},
      {apiVersion: 'v1', kind: 'Pod', metadata: {name: 'solo'}, spec: template.spec},
      {apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'settings'}},
    ], kind: 'List'}
    const first = injectManifests(JSON.stringify(list), 'list.json', {image: IMAGE, mode: 'proxy'})
    assert.deepEqual(first.injected, ['StatefulSet/db', 'DaemonSet/logs', 'Job/once', 'CronJob/nightly', 'Pod/solo'])
    const again = injectManifests(first.yaml, 'out.yaml', {image: IMAGE, mode: 'proxy'})
    assert.deepEqual(again.injected, [])
    assert.equal(again.skipped.length, 5)
    assert.equal(again.yaml, first.yaml, 'injecting an injected manifest changes nothing')
    const optedOut = DEPLOYMENT.replace('      labels:\n        app: web\n    spec:', '      annotations:\n        ztctl.io/inject: "false"\n      labels:\n        app: web\n    spec:')
    const left = injectManifests(optedOut, 'deploy.yaml', {image: IMAGE, mode: 'proxy'})
    assert.deepEqual([left.injected, left.skipped], [[], ['Deployment/web: ztctl.io/inject: "false"']])
  })

  test('garbage is a clear usage error naming the place', () => {
    const bad = (text: string, pattern: RegExp) => assert.throws(() => injectManifests(text, 'deploy.yaml', {image: IMAGE, mode: 'proxy'}), (error: Error & {code?: string; exit?: number}) => {
      assert.equal(error.code, 'ZT_ERR_BAD_MANIFEST')
      assert.match(error.message, pattern)
      return true
    })
    bad('kind: Deployment\nmetadata: {name: [\n', /^deploy\.yaml:\d+:\d+ \(document 1\): /)
    bad('a: 1\na: 2\n', /deploy\.yaml:2:1 \(document 1\).*unique/i)
    bad('just a string', /document 1\) is not a Kubernetes object: it needs apiVersion and kind/)
    bad('', /holds no Kubernetes object/)
    bad('apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {}\n', /Deployment\/web has no spec\.template/)
    bad('apiVersion: apps/v1\nkind: Deployment\nmetadata: {}\nspec: {template: {spec: {containers: []}}}\n', /without metadata\.name/)
    assert.throws(() => injectManifests('apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {hostNetwork: true, containers: [{name: a, image: b}]}\n', 'p.yaml', {image: IMAGE, mode: 'tproxy'}), {suggestion: 'use --mode proxy for hostNetwork pods'})
    bad('\x00\x01\x02binary', /not a Kubernetes object|deploy\.yaml/)
  })

  test('standard input is read whole, and bounded', async () => {
    assert.equal(await readManifestInput('-', Readable.from([Buffer.from('kind: '), Buffer.from('Pod\n')])), 'kind: Pod\n')
    const huge = Readable.from((function * () {
      for (let i = 0; i < 17; i++) yield Buffer.alloc(1024 * 1024, 0x61)
    })())
    await assert.rejects(readManifestInput('-', huge), {code: 'ZT_ERR_BAD_MANIFEST', message: /larger than 16 MiB/})
    await assert.rejects(readManifestInput('/nonexistent/deploy.yaml'), {code: 'ZT_ERR_NOT_FOUND', message: /cannot read \/nonexistent\/deploy\.yaml: ENOENT/})
  })
})

function run(args: string[], input?: string): Promise<{code: number | null; stderr: string; stdout: string}> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUN_JS, ...args], {env: {...process.env, NO_COLOR: '1'}, stdio: ['pipe', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({code, stderr, stdout}))
    child.stdin.end(input ?? '')
  })
}

test('ztctl inject: -f FILE and -f - print the injected manifests; garbage exits 2 with the place and what to give', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ztctl-inject-'))
  t.after(() => rm(dir, {force: true, recursive: true}))
  const file = path.join(dir, 'deploy.yaml')
  await writeFile(file, DEPLOYMENT)
  const fromFile = await run(['inject', '-f', file, '--mode', 'tproxy'])
  assert.equal(fromFile.code, 0, fromFile.stderr)
  assert.match(fromFile.stderr, /injected Deployment\/web \(tproxy\)/)
  const fromStdin = await run(['inject', '-f', '-', '--mode', 'tproxy'], DEPLOYMENT)
  assert.equal(fromStdin.stdout, fromFile.stdout, 'stdin gives the same output')
  assert.match(docs(fromFile.stdout)[0].spec.template.spec.containers[1].image, /^ztctl\.local\/ztctl:\d+\.\d+\.\d+/)
  const garbage = await run(['inject', '-f', '-'], 'apiVersion: v1\nkind: Pod\nmetadata: {name: [\n')
  assert.equal(garbage.code, 2)
  assert.match(garbage.stderr, /standard input:\d+:\d+ \(document 1\)/)
  assert.match(garbage.stderr, /Kubernetes manifests in YAML or JSON/)
  assert.equal(garbage.stdout, '', 'nothing printed on failure')
})

// The hub in the rendering (`--set hub.enabled=true`): off by default; on, a Service and a one-replica
// Deployment ztctl-hub on 15009 running `hub run` as the identity in Secret ztctl-hub, which the controller is
// told to keep valid; the node agents and the host pod attach to it by its Service's address with its name
// pinned, and it is applied before them (its Service's environment variables exist when their pods start).
// `profile dump` and `manifest generate` through the real CLI show it.
import assert from 'node:assert/strict'
import {test} from 'node:test'

import {renderInstallation, toYaml} from '../../src/lib/kube/manifest/render.js'
import {profileValues, resolveValues} from '../../src/lib/kube/manifest/profiles.js'
import {runCli} from '../helpers/controller.js'

interface Container {args: string[]; name: string; ports?: {containerPort: number}[]; readinessProbe?: {tcpSocket?: {port: number}}; securityContext?: {readOnlyRootFilesystem?: boolean}}
interface PodSpec {containers: Container[]; volumes?: {secret?: {secretName: string}}[]}
interface Item {
  component: string
  object: {kind: string; metadata: {labels: Record<string, string>; name: string; namespace?: string}; spec: {ports?: {port: number; targetPort: string}[]; replicas?: number; selector?: unknown; template: {spec: PodSpec}; type?: string}}
}

async function render(set: string[]): Promise<Item[]> {
  const rendering = await renderInstallation(await resolveValues({profile: 'ambient', set, version: '0.1.0'}), '0.1.0')
  return rendering.objects as unknown as Item[]
}

const find = (items: Item[], kind: string, name: string) => items.find((item) => item.object.kind === kind && item.object.metadata.name === name)
const argsOf = (items: Item[], kind: string, name: string): string[] => find(items, kind, name)!.object.spec.template.spec.containers[0].args

test('hub.enabled=false (the default) renders no hub and no --hub anywhere', async () => {
  const items = await render(['hostPod.enabled=true'])
  assert.equal(items.filter((item) => item.component === 'hub').length, 0)
  for (const [kind, name] of [['DaemonSet', 'ztctl-node'], ['Deployment', 'ztctl-host'], ['Deployment', 'ztctl-controller']]) {
    assert.ok(!argsOf(items, kind!, name!).some((arg) => arg.startsWith('--hub')), `${name} has no hub flag`)
  }

  assert.equal((profileValues('ambient', '0.1.0').hub as {enabled: boolean}).enabled, false)
})

test('hub.enabled=true renders Service + Deployment ztctl-hub on 15009 (identity Secret ztctl-hub), before the agents, which attach to it', async () => {
  const items = await render(['hub.enabled=true', 'hostPod.enabled=true', 'hub.resources.limits.memory=256Mi'])
  const service = find(items, 'Service', 'ztctl-hub')!
  assert.equal(service.component, 'hub')
  assert.equal(service.object.metadata.namespace, 'ztctl-system')
  assert.equal(service.object.spec.type, 'ClusterIP')
  assert.deepEqual(service.object.spec.ports!.map(({port, targetPort}) => [port, targetPort]), [[15_009, 'tls-hub']])

  const deployment = find(items, 'Deployment', 'ztctl-hub')!
  assert.equal(deployment.object.metadata.labels['app.kubernetes.io/component'], 'hub')
  assert.equal(deployment.object.spec.replicas, 1, 'one hub process: both ends of a relay attach to the same one')
  const {containers, volumes} = deployment.object.spec.template.spec
  const [hub] = containers
  assert.deepEqual(hub.args, [
    'hub', 'run', '-i', '/var/run/ztctl/identity/identity.json', '--controller', 'https://$(ZTCTL_CONTROLLER_SERVICE_HOST):$(ZTCTL_CONTROLLER_SERVICE_PORT)',
    '--listen', '0.0.0.0:15009', '--advertise', '$(POD_IP):15009', '--admin', '127.0.0.1:15010',
  ])
  assert.deepEqual([hub.ports!.map((port) => port.containerPort), hub.readinessProbe?.tcpSocket?.port, hub.securityContext?.readOnlyRootFilesystem], [[15_009], 15_009, true])
  assert.equal(volumes![0].secret?.secretName, 'ztctl-hub')
  assert.ok(JSON.stringify(deployment.object).includes('"memory":"256Mi"'), 'hub.resources reach the pod')

  const controllerArgs = argsOf(items, 'Deployment', 'ztctl-controller')
  assert.equal(controllerArgs[controllerArgs.indexOf('--hub-identity-secret') + 1], 'ztctl-hub', 'the controller keeps the hub identity')
  const hubFlag = ['--hub', 'hub@$(ZTCTL_HUB_SERVICE_HOST):$(ZTCTL_HUB_SERVICE_PORT)']
  for (const name of ['ztctl-node', 'ztctl-host']) {
    const args = argsOf(items, name === 'ztctl-node' ? 'DaemonSet' : 'Deployment', name)
    assert.deepEqual(args.slice(args.indexOf('--hub'), args.indexOf('--hub') + 2), hubFlag, `${name} attaches to the hub, its name pinned`)
  }

  const order = items.map((item) => `${item.object.kind}/${item.object.metadata.name}`)
  assert.ok(order.indexOf('Deployment/ztctl-controller') < order.indexOf('Service/ztctl-hub'), 'after the controller (it issues the identity)')
  assert.ok(order.indexOf('Deployment/ztctl-hub') < order.indexOf('DaemonSet/ztctl-node'), 'before the node agents')
  assert.match(await toYaml(items.map((item) => item.object as never)), /name: ztctl-hub/)
})

test('profile dump and manifest generate show the hub', {timeout: 60_000}, async () => {
  const env = {...process.env, NO_COLOR: '1'}
  const dump = await runCli(['profile', 'dump', 'ambient', '-o', 'json'], env)
  assert.equal(dump.code, 0, dump.stderr)
  assert.deepEqual((JSON.parse(dump.stdout) as {hub: {enabled: boolean}}).hub.enabled, false)
  const generated = await runCli(['manifest', 'generate', '--set', 'hub.enabled=true'], env)
  assert.equal(generated.code, 0, generated.stderr)
  assert.match(generated.stdout, /kind: Service\n[\s\S]*?name: ztctl-hub/)
  assert.match(generated.stdout, /- hub@\$\(ZTCTL_HUB_SERVICE_HOST\):\$\(ZTCTL_HUB_SERVICE_PORT\)/)
  const typo = await runCli(['manifest', 'generate', '--set', 'hub.enable=true'], env)
  assert.notEqual(typo.code, 0)
  assert.match(typo.stderr, /did you mean hub\.enabled/)
})

// The host pod in the rendering: off by default; with hostPod.enabled a Deployment ztctl-host running the
// agent as the identity in Secret ztctl-host (reaching the controller by its Service's address), and the
// controller told to keep that identity valid.
import assert from 'node:assert/strict'
import {test} from 'node:test'

import {renderInstallation} from '../../src/lib/kube/manifest/render.js'
import {resolveValues} from '../../src/lib/kube/manifest/profiles.js'

interface Container {args: string[]}
interface Workload {kind: string; metadata: {labels: Record<string, string>; name: string}; spec: {template: {spec: {containers: Container[]; volumes: {secret?: {secretName: string}}[]}}}}

async function render(set: string[]) {
  const rendering = await renderInstallation(await resolveValues({profile: 'ambient', set, version: '0.1.0'}), '0.1.0')
  return rendering.objects.map((item) => item.object as unknown as Workload)
}

test('hostPod.enabled renders Deployment ztctl-host (component host-pod, after the node agents) and the controller keeps Secret ztctl-host', async () => {
  const off = await render([])
  assert.equal(off.find((object) => object.metadata.name === 'ztctl-host'), undefined)
  assert.ok(!off.find((object) => object.metadata.name === 'ztctl-controller' && object.kind === 'Deployment')!.spec.template.spec.containers[0].args.includes('--host-identity-secret'))

  const on = await render(['hostPod.enabled=true'])
  const host = on.find((object) => object.kind === 'Deployment' && object.metadata.name === 'ztctl-host')!
  assert.equal(host.metadata.labels['app.kubernetes.io/component'], 'host-pod')
  const [agent] = host.spec.template.spec.containers
  assert.deepEqual(agent.args.slice(0, 6), ['agent', 'run', '-i', '/var/run/ztctl/identity/identity.json', '--controller', 'https://$(ZTCTL_CONTROLLER_SERVICE_HOST):$(ZTCTL_CONTROLLER_SERVICE_PORT)'])
  assert.ok(agent.args.includes('$(POD_IP):15008'), 'other agents dial the pod')
  assert.equal(host.spec.template.spec.volumes[0].secret?.secretName, 'ztctl-host')
  const controller = on.find((object) => object.metadata.name === 'ztctl-controller' && object.kind === 'Deployment')!
  assert.deepEqual(controller.spec.template.spec.containers[0].args.slice(-2), ['--host-identity-secret', 'ztctl-host'])
  const order = on.map((object) => object.metadata.name)
  assert.ok(order.indexOf('ztctl-host') > order.lastIndexOf('ztctl-node'), 'applied after the node agents')
})

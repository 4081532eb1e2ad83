// The controller's workload routes with a real controller process: workload certificates and workload
// publishing only for identities with role `node`, SPIFFE IDs of the form ns/NS/sa/SA, each node
// owning its own workloads, and the workload resources listed for admins.
import assert from 'node:assert/strict'
import path from 'node:path'
import {test} from 'node:test'

import {ControllerClient} from '../../src/lib/client/controller-client.js'
import {readIdentityFile} from '../../src/lib/identity/file.js'
import {certInfo} from '../../src/lib/pki/cert-info.js'
import {createKeyAndCsr} from '../../src/lib/pki/pki.js'
import {startTestController, type TestController} from '../helpers/controller.js'

/** Node identities serve shop/* from 10.1.0.0/24 (their scope: test/controller/node-identities.test.ts). */
const NODE_SCOPE = ['--serves', 'shop/*', '--pod-cidr', '10.1.0.0/24']

async function enrolled(t: {after(fn: () => void): void}, ctl: TestController, name: string, roles: string[]): Promise<ControllerClient> {
  const jwt = path.join(ctl.home, `${name}.jwt`)
  const file = path.join(ctl.home, `${name}.json`)
  const scope = roles.includes('node') ? NODE_SCOPE : []
  assert.equal((await ctl.run(['identity', 'create', name, ...roles.flatMap((role) => ['-a', role]), ...scope, '--out', jwt])).code, 0)
  assert.equal((await ctl.run(['enroll', jwt, '--out', file])).code, 0)
  const client = ControllerClient.fromIdentity(await readIdentityFile(file))
  t.after(() => client.close())
  return client
}

test('workload certificates and workloads: node role only, ns/sa SPIFFE IDs, per-node ownership', async (t) => {
  const ctl = await startTestController(t)
  const [node1, node2, plain] = await Promise.all([enrolled(t, ctl, 'node1', ['node']), enrolled(t, ctl, 'node2', ['node']), enrolled(t, ctl, 'plain', [])])
  const admin = ControllerClient.fromIdentity(await readIdentityFile(ctl.adminIdentityPath))
  t.after(() => admin.close())
  const {csrPem, keyPem} = await createKeyAndCsr('web')

  const issued = await node1.request<{ca: string; cert: string; spiffe: string}>('POST', '/v1/workload-certs', {csr: csrPem, namespace: 'shop', serviceAccount: 'web'})
  assert.equal(issued.spiffe, 'spiffe://cluster.local/ns/shop/sa/web')
  assert.equal(certInfo(issued.cert).spiffe, issued.spiffe)
  await assert.rejects(plain.request('POST', '/v1/workload-certs', {csr: csrPem, namespace: 'shop', serviceAccount: 'web'}), {code: 'ZT_ERR_FORBIDDEN'})
  await assert.rejects(node1.request('POST', '/v1/workload-certs', {csr: csrPem, namespace: 'Shop/..', serviceAccount: 'web'}), {code: 'ZT_ERR_BAD_REQUEST'})

  const workload = {hbone: '10.0.0.1:15008', ips: ['10.1.0.5'], name: 'web-0', namespace: 'shop', serviceAccount: 'web'}
  await node1.request('PUT', '/v1/workloads/uid-1', workload)
  const listed = await admin.request<{items: unknown[]}>('GET', '/v1/resources/workload')
  assert.deepEqual(listed.items, [{...workload, node: 'node1', uid: 'uid-1'}])
  await assert.rejects(node2.request('PUT', '/v1/workloads/uid-1', workload), {code: 'ZT_ERR_CONFLICT'})
  await assert.rejects(node2.request('DELETE', '/v1/workloads/uid-1'), {code: 'ZT_ERR_CONFLICT'})
  await assert.rejects(plain.request('PUT', '/v1/workloads/uid-2', workload), {code: 'ZT_ERR_FORBIDDEN'})
  await assert.rejects(node1.request('PUT', '/v1/workloads/uid-2', {...workload, ips: ['not-an-ip']}), {code: 'ZT_ERR_BAD_REQUEST'})
  await node1.request('DELETE', '/v1/workloads/uid-1')
  assert.deepEqual((await admin.request<{items: unknown[]}>('GET', '/v1/resources/workload')).items, [])
  await assert.rejects(node1.request('DELETE', '/v1/workloads/uid-1'), {code: 'ZT_ERR_NOT_FOUND'})
  // A workload certificate is not a credential for the controller API.
  const asWorkload = new ControllerClient({ca: issued.ca, cert: issued.cert, key: keyPem, url: ctl.url})
  t.after(() => asWorkload.close())
  await assert.rejects(asWorkload.request('PUT', '/v1/workloads/uid-3', workload), {code: 'ZT_ERR_UNAUTHORIZED'})
})

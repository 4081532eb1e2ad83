// Node identities (issue 11, items 3 and 4) against a real controller process:
// - a node's scope is given at creation (`--serves NS/SA`, `--pod-cidr CIDR`) and checked there;
// - the controller refuses a node a workload certificate or a published workload outside it (and an
//   unscoped node everything);
// - every certificate a node minted is recorded as its own: deleting the node revokes it, and a real agent
//   process (following the controller) cuts a live tunnel made with it and refuses new ones, within seconds.
import assert from 'node:assert/strict'
import path from 'node:path'
import {test} from 'node:test'

import {ControllerClient} from '../../src/lib/client/controller-client.js'
import {type IdentityFile, readIdentityFile} from '../../src/lib/identity/file.js'
import {certInfo} from '../../src/lib/pki/cert-info.js'
import {createKeyAndCsr} from '../../src/lib/pki/pki.js'
import {spawnAgentProcess} from '../helpers/agent-process.js'
import {startTestController, type TestController} from '../helpers/controller.js'
import {hboneConnect} from '../helpers/hbone-client.js'
import {echoServer, waitFor} from '../proxy/helpers.js'

async function createEnrolled(ctl: TestController, name: string, flags: string[]): Promise<{client: ControllerClient; file: string; identity: IdentityFile}> {
  const created = await ctl.run(['identity', 'create', name, ...flags])
  assert.equal(created.code, 0, created.stderr)
  const file = path.join(ctl.home, `${name}.json`)
  assert.equal((await ctl.run(['enroll', path.join(ctl.home, `${name}.jwt`)])).code, 0)
  const identity = await readIdentityFile(file)
  return {client: ControllerClient.fromIdentity(identity), file, identity}
}

test('node identities: scoped at creation, enforced by the controller, and revoked with every certificate they minted', async (t) => {
  const ctl = await startTestController(t)
  const clients: ControllerClient[] = []
  t.after(() => {
    for (const client of clients) client.close()
  })

  await t.test('a scope is checked when the identity is created', async () => {
    for (const [flags, message] of [
      [['--serves', 'prod/*'], /for node identities only/],
      [['-a', 'node', '--serves', 'Prod'], /not NAMESPACE\/SERVICE_ACCOUNT/],
      [['-a', 'node', '--serves', 'prod/*', '--pod-cidr', '10.1.0.0'], /not a CIDR/],
      [['-a', 'node', '--pod-cidr', '10.1.0.0/33'], /not a CIDR/],
    ] as const) {
      const result = await ctl.run(['identity', 'create', 'bad-scope', ...flags])
      assert.equal(result.code, 2, `${flags.join(' ')}: ${result.stderr}`)
      assert.match(result.stderr, /ZT_ERR_BAD_SCOPE/)
      assert.match(result.stderr, message)
    }

    // The controller checks too (an API caller skips the CLI).
    const admin = ControllerClient.fromIdentity(await readIdentityFile(ctl.adminIdentityPath))
    clients.push(admin)
    await assert.rejects(admin.request('POST', '/v1/identities', {name: 'bad-scope', roles: [], scope: {serves: ['prod/*']}}), {code: 'ZT_ERR_BAD_SCOPE'})
  })

  const node = await createEnrolled(ctl, 'node-1', ['-a', 'node', '--serves', 'prod/*', '--pod-cidr', '10.1.0.0/24'])
  clients.push(node.client)
  const shown = await ctl.run(['identity', 'show', 'node-1'])
  assert.match(shown.stdout, /Serves:\s+prod\/\*\nPod CIDRs:\s+10\.1\.0\.0\/24/)

  await t.test('a node is refused a certificate or a workload outside its scope', async () => {
    const {csrPem} = await createKeyAndCsr('x')
    for (const [namespace, serviceAccount] of [['kube-system', 'admin'], ['shop', 'payments']]) {
      await assert.rejects(node.client.request('POST', '/v1/workload-certs', {csr: csrPem, namespace, serviceAccount}), {
        code: 'ZT_ERR_FORBIDDEN', message: new RegExp(`node identity "node-1" may serve prod/\\*, not ${namespace}/${serviceAccount}`),
      })
    }

    const issued = await node.client.request<{cert: string; spiffe: string}>('POST', '/v1/workload-certs', {csr: csrPem, namespace: 'prod', serviceAccount: 'payments'})
    assert.equal(certInfo(issued.cert).spiffe, 'spiffe://cluster.local/ns/prod/sa/payments')

    const workload = {hbone: '10.1.0.1:15008', ips: ['10.1.0.7'], name: 'pay-0', namespace: 'prod', serviceAccount: 'payments'}
    for (const ips of [['10.9.9.9'], ['127.0.0.1'], ['10.1.0.7', '10.1.1.7']]) {
      await assert.rejects(node.client.request('PUT', '/v1/workloads/uid-pay', {...workload, ips}), {code: 'ZT_ERR_FORBIDDEN', message: /may publish addresses in 10\.1\.0\.0\/24, not /})
    }

    await assert.rejects(node.client.request('PUT', '/v1/workloads/uid-adm', {...workload, namespace: 'kube-system', serviceAccount: 'admin'}), {code: 'ZT_ERR_FORBIDDEN'})
    await node.client.request('PUT', '/v1/workloads/uid-pay', workload)

    // A node identity created without a scope serves nothing.
    const unscoped = await createEnrolled(ctl, 'node-0', ['-a', 'node'])
    clients.push(unscoped.client)
    await assert.rejects(unscoped.client.request('POST', '/v1/workload-certs', {csr: csrPem, namespace: 'prod', serviceAccount: 'payments'}), {
      code: 'ZT_ERR_FORBIDDEN', message: /has no scope/,
    })
  })

  await t.test('deleting a node revokes every certificate it minted, within seconds', async (tt) => {
    const echo = await echoServer(tt)
    const agentB = await createEnrolled(ctl, 'agent-b', ['-a', 'agent'])
    agentB.client.close()
    const agent = await spawnAgentProcess(tt, {identityFile: agentB.file, readyFile: path.join(ctl.home, 'agent-b.ready.json')})
    const opened = await ctl.run(['tunnel', 'open', 'outbound', 'tcp/pay', '--agent', 'agent-b', '--target', `127.0.0.1:${echo.port}`])
    assert.equal(opened.code, 0, opened.stderr)

    // What whoever holds the node's key can mint: a prod/payments workload certificate.
    const {csrPem, keyPem} = await createKeyAndCsr('payments')
    const minted = await node.client.request<{ca: string; cert: string}>('POST', '/v1/workload-certs', {csr: csrPem, namespace: 'prod', serviceAccount: 'payments'})
    const serial = certInfo(minted.cert).serial
    const tls = {ca: minted.ca, cert: minted.cert, key: keyPem}
    const target = `127.0.0.1:${echo.port}`
    const live = await waitFor('agent-b to host tcp/pay', async () => {
      const attempt = await hboneConnect(agent.ready.addresses.hbone, tls, target)
      if (attempt.status === 200) return attempt
      attempt.session.destroy()
      return undefined
    }, 10_000)
    tt.after(() => live.session.destroy())
    live.stream.write('before')
    await new Promise((resolve) => live.stream.once('data', resolve))
    const cut = new Promise<number>((resolve) => live.stream.once('close', () => resolve(Date.now())))

    const started = Date.now()
    const deleted = await ctl.run(['identity', 'delete', 'node-1', '-o', 'json'])
    assert.equal(deleted.code, 0, deleted.stderr)
    const revoked = (JSON.parse(deleted.stdout) as {revokedSerials: string[]}).revokedSerials
    assert.ok(revoked.includes(serial), `the minted certificate ${serial} is among the revoked: ${revoked.join(', ')}`)
    assert.equal(revoked.length, 3, 'the node\'s own certificate and the two workload certificates it minted')

    const cutMs = (await cut) - started
    const refused = await waitFor('a new CONNECT with the minted certificate refused', async () => {
      const attempt = await hboneConnect(agent.ready.addresses.hbone, tls, target)
      attempt.session.destroy()
      return attempt.status === 401 ? Date.now() - started : undefined
    }, 10_000)
    tt.diagnostic(`revocation of a node-minted certificate: live tunnel cut ${cutMs} ms, new CONNECT refused (401) ${refused} ms after \`identity delete\` began`)
    assert.ok(cutMs < 5000 && refused < 5000, `within seconds: cut after ${cutMs} ms, refused after ${refused} ms`)
    assert.match(agent.stdout(), /CERT_REVOKED|revoked/)
  })
})

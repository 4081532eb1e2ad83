// The workload certificate store's first issue (no root, a real CA): callers share one request, a hung
// issue fails after the issue timeout, and after a failure the store refuses at once (no request) until
// the retry pause is over, then asks again and serves the certificate.
import assert from 'node:assert/strict'
import {test} from 'node:test'

import {WorkloadCertificates, type WorkloadCertRequest} from '../../src/lib/inpod/certs.js'
import {createMesh, TRUST_DOMAIN} from '../proxy/helpers.js'

test('workload certificates: a hung issue times out, a failure is refused without asking until the retry pause, then issued', async () => {
  const mesh = await createMesh()
  let mode: 'fail' | 'hang' | 'sign' = 'hang'
  const requests: string[] = []
  const issue = async ({csr, namespace, serviceAccount}: WorkloadCertRequest) => {
    requests.push(mode)
    if (mode === 'hang') return new Promise<never>(() => {})
    if (mode === 'fail') throw new Error('controller unavailable (test)')
    const spiffe = `spiffe://${TRUST_DOMAIN}/ns/${namespace}/sa/${serviceAccount}`
    return {ca: mesh.signer.ca.certPem, cert: (await mesh.signer.signCsr(csr, {spiffe, ttlSeconds: 600})).certPem, spiffe}
  }

  const retryMs = 300
  const certs = new WorkloadCertificates(issue, () => {}, {issueTimeoutMs: 200, retryMs})
  // Two callers, one request; it hangs, both fail at the timeout.
  const results = await Promise.allSettled([certs.get('default', 'web'), certs.get('default', 'web')])
  assert.deepEqual(results.map((result) => result.status === 'rejected' && /took over 200 ms/.test(String(result.reason))), [true, true])
  assert.deepEqual(requests, ['hang'])

  // Within the pause: refused at once, nothing asked.
  mode = 'sign'
  await assert.rejects(certs.get('default', 'web'), /no certificate for default\/web yet \(issuing the certificate of default\/web took over 200 ms\); asking again in \d+ ms/)
  assert.deepEqual(requests, ['hang'])

  // After it: asked again, issued, then served from the store.
  await new Promise((resolve) => setTimeout(resolve, retryMs + 20))
  const credentials = await certs.get('default', 'web')
  assert.equal(credentials.identity.spiffe, `spiffe://${TRUST_DOMAIN}/ns/default/sa/web`)
  assert.equal(await certs.get('default', 'web'), credentials)
  assert.deepEqual(requests, ['hang', 'sign'])

  // Another account failing: the error itself, then refused until the pause is over.
  mode = 'fail'
  await assert.rejects(certs.get('default', 'db'), /controller unavailable/)
  await assert.rejects(certs.get('default', 'db'), /no certificate for default\/db yet \(controller unavailable \(test\)\)/)
  assert.deepEqual(requests, ['hang', 'sign', 'fail'])
  certs.close()
})

// `ztctl verify-install --traffic` on a real cluster (issue 12): probe pods in a temporary ambient namespace
// connect through the node agent over HBONE (its access log names both SPIFFE IDs); with the node agent
// DaemonSet deleted the traffic check fails with a reason and exit code 1. The namespace is gone either way.
import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'

import {runCli} from '../helpers/controller.js'
import {K8S_TEST_TIMEOUT_MS, nodeValues, startCluster, ztctlImage} from '../helpers/k8s.js'
import {waitUntil} from '../helpers/wait.js'

const NS = 'ztctl-system'

interface Check {kind: string; message: string; name: string; namespace?: string; ok: boolean}

test('verify-install --traffic proves HBONE through the node agent and cleans up; without node agents it fails and still cleans up', {timeout: K8S_TEST_TIMEOUT_MS}, async (t) => {
  const image = await ztctlImage()
  const cluster = await startCluster(t, {nodes: 1})
  await cluster.importImage(image.tar)
  const home = await mkdtemp(path.join(tmpdir(), 'ztctl-vt-'))
  t.after(() => rm(home, {force: true, recursive: true}))
  const env = {...process.env, HOME: home, KUBECONFIG: cluster.kubeconfigPath, NO_COLOR: '1', ZTCTL_HOME: home}
  const ztctl = (args: string[]) => runCli(args, env, {timeoutMs: 600_000})
  const install = await ztctl(['install', '--profile', 'ambient', '-y', ...nodeValues(cluster.nodes[0])])
  assert.equal(install.code, 0, install.stdout + install.stderr)
  const traffic = async (): Promise<{checks: Check[]; code: number | null; out: string}> => {
    const result = await ztctl(['verify-install', '--traffic', '--timeout', '3m', '-o', 'json'])
    assert.ok(result.stdout.trim().startsWith('{'), result.stdout + result.stderr)
    const parsed = JSON.parse(result.stdout) as {checks: Check[]}
    return {checks: parsed.checks.filter((check) => check.kind === 'Traffic'), code: result.code, out: result.stdout + result.stderr}
  }

  const probeNamespaceGone = async (namespace: string) => {
    const names = (await cluster.core.listNamespace()).items.map((item) => item.metadata!.name!)
    assert.ok(!names.includes(namespace), `${namespace} is gone: ${names.join(', ')}`)
  }

  await t.test('success: the connection went over HBONE with both SPIFFE IDs; the namespace is deleted', async () => {
    const result = await traffic()
    assert.equal(result.code, 0, result.out)
    assert.deepEqual(result.checks.map((check) => [check.name, check.ok]), [['namespace', true], ['probe-server', true], ['connection', true], ['hbone', true], ['cleanup', true]])
    const namespace = result.checks[0].namespace!
    assert.match(result.checks[3].message, new RegExp(`spiffe://cluster.local/ns/${namespace}/sa/probe-client → spiffe://cluster.local/ns/${namespace}/sa/probe-server`))
    await probeNamespaceGone(namespace)
  })

  await t.test('failure: with the node agent DaemonSet deleted the traffic check is ✘ with a reason, exit 1, and the namespace is deleted', async () => {
    await cluster.apps.deleteNamespacedDaemonSet({name: 'ztctl-node', namespace: NS})
    await waitUntil('the node agent pods gone', async () => ((await cluster.core.listNamespacedPod({labelSelector: 'app.kubernetes.io/name=ztctl-node', namespace: NS})).items.length === 0 ? true : undefined), 120_000, 500)
    const result = await traffic()
    assert.equal(result.code, 1, result.out)
    const failed = result.checks.filter((check) => !check.ok)
    assert.ok(failed.length > 0 && failed.every((check) => check.message.length > 0), JSON.stringify(result.checks))
    assert.ok(failed.some((check) => ['connection', 'hbone', 'probe'].includes(check.name)), JSON.stringify(result.checks))
    const cleanup = result.checks.at(-1)!
    assert.deepEqual([cleanup.name, cleanup.ok], ['cleanup', true])
    await probeNamespaceGone(cleanup.namespace!)
  })
})

// What the controller-in-the-cluster tests share: the CRDs applied once per cluster, a fresh namespace
// per test (deleted after it), Kubernetes clients on the cluster's admin kubeconfig.
import {spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {kubeClients, type KubeClients} from '../../src/lib/kube/client.js'
import {crdObjects, forClientNode} from '../../src/lib/kube/crds.js'
import {RUN_JS} from '../helpers/controller.js'
import type {Cluster} from '../helpers/k8s.js'

interface TestContextLike {
  after(fn: () => Promise<void> | void): void
}

const applied = new WeakSet<Cluster>()

/** Server-side apply the CRDs (field manager ztctl-test) and wait until each is Established. */
export async function applyCrds(cluster: Cluster): Promise<void> {
  if (applied.has(cluster)) return
  const {PatchStrategy, ApiextensionsV1Api} = await import('@kubernetes/client-node')
  const extensions = cluster.kc.makeApiClient(ApiextensionsV1Api)
  for (const crd of crdObjects({'app.kubernetes.io/part-of': 'ztctl'})) {
    await cluster.objects.patch(forClientNode(crd) as never, undefined, undefined, 'ztctl-test', true, PatchStrategy.ServerSideApply)
  }

  const deadline = Date.now() + 30_000
  for (const crd of crdObjects()) {
    const name = (crd.metadata as {name: string}).name
    for (;;) {
      const current = await extensions.readCustomResourceDefinition({name})
      if (current.status?.conditions?.some((condition) => condition.type === 'Established' && condition.status === 'True')) break
      if (Date.now() > deadline) throw new Error(`CRD ${name} not Established within 30 s`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  applied.add(cluster)
}

/** A new namespace with a unique name, removed after the test. */
export async function freshNamespace(t: TestContextLike, cluster: Cluster, prefix = 'zt'): Promise<string> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`
  await cluster.core.createNamespace({body: {metadata: {name}}})
  t.after(async () => {
    await cluster.core.deleteNamespace({name}).catch(() => {})
  })
  return name
}

export async function clientsFor(cluster: Cluster): Promise<KubeClients> {
  return kubeClients({kubeconfig: cluster.kubeconfigPath})
}

export interface KubeController {
  /** https://127.0.0.1:PORT */
  url: string
  /** http://127.0.0.1:PORT of /ready and /healthz */
  health: string
  pid: number
  replica: string
  logs(): string
  kill9(): Promise<void>
  stop(): Promise<void>
}

/**
 * A real `controller run --store kubernetes` process on this host (127.0.0.1, ports 0), with the cluster's
 * admin kubeconfig and POD_NAME=replica, killed by PID after the test.
 */
export async function startKubeController(t: TestContextLike, cluster: Cluster, namespace: string, replica: string, extraArgs: string[] = []): Promise<KubeController> {
  const home = await mkdtemp(path.join(tmpdir(), 'ztctl-kctl-'))
  t.after(() => rm(home, {force: true, recursive: true}))
  const child = spawn(process.execPath, [
    RUN_JS, 'controller', 'run', '--store', 'kubernetes', '--kubeconfig', cluster.kubeconfigPath, '-n', namespace,
    '--listen', '127.0.0.1:0', '--health', '127.0.0.1:0', ...extraArgs,
  ], {env: {...process.env, NO_COLOR: '1', POD_NAME: replica, ZTCTL_HOME: home}, stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const kill = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }

  t.after(() => kill('SIGKILL'))
  // The banner's last line is the PID: by then the URL and the health address are printed.
  const deadline = Date.now() + 60_000
  while (!/^\s+pid\s+:/m.test(stdout)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`controller ${replica} did not start (exit ${child.exitCode}):\n${stdout}\n${stderr}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }

  return {
    health: /^\s+health\s+: (\S+)/m.exec(stdout)![1],
    kill9: () => kill('SIGKILL'),
    logs: () => stderr,
    pid: child.pid!,
    replica,
    stop: () => kill('SIGTERM'),
    url: /controller listening at: (\S+)/.exec(stdout)![1],
  }
}

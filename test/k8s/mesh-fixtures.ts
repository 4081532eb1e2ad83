// What the mesh-in-the-cluster tests share: the CLI against the test cluster (its own home, the cluster's
// kubeconfig), and identities enrolled from inside the cluster, where the token's controller URL
// (https://ztctl-controller.ztctl-system.svc:15012) resolves — the harness has no cluster DNS, so the
// enrolling pod gets a host alias for that name (what cluster DNS answers elsewhere).
import assert from 'node:assert/strict'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {runCli} from '../helpers/controller.js'
import type {Cluster} from '../helpers/k8s.js'

interface TestContextLike {
  after(fn: () => Promise<void> | void): void
}

export interface MeshCli {
  home: string
  /** run ztctl; fails the test on a non-zero exit; resolves to stdout */
  ztctl(args: string[]): Promise<string>
}

export async function meshCli(t: TestContextLike, cluster: Cluster): Promise<MeshCli> {
  const home = await mkdtemp(path.join(tmpdir(), 'ztctl-k8s2b-'))
  t.after(() => rm(home, {force: true, recursive: true}))
  const env = {...process.env, HOME: home, KUBECONFIG: cluster.kubeconfigPath, NO_COLOR: '1', ZTCTL_HOME: home}
  return {
    home,
    async ztctl(args) {
      const result = await runCli(args, env, {cwd: home, timeoutMs: 600_000})
      assert.equal(result.code, 0, `ztctl ${args.join(' ')}: ${result.stdout}${result.stderr}`)
      return result.stdout
    },
  }
}

/** The host aliases a pod needs to reach the controller by its Service name without cluster DNS. */
export async function controllerHostAliases(cluster: Cluster): Promise<{hostnames: string[]; ip: string}[]> {
  const service = await cluster.core.readNamespacedService({name: 'ztctl-controller', namespace: 'ztctl-system'})
  return [{hostnames: ['ztctl-controller.ztctl-system.svc'], ip: service.spec!.clusterIP!}]
}

/** `identity create NAME` for each name, enrolled in a pod of NAMESPACE; resolves to each identity file's text. */
export async function enrollInCluster(cli: MeshCli, cluster: Cluster, image: string, namespace: string, names: string[]): Promise<Record<string, string>> {
  for (const name of names) await cli.ztctl(['identity', 'create', name, '--out', path.join(cli.home, `${name}.jwt`)])
  const {core} = cluster
  const tokens = Object.fromEntries(await Promise.all(names.map(async (name) => [`${name}.jwt`, await readFile(path.join(cli.home, `${name}.jwt`), 'utf8')])))
  await core.createNamespacedSecret({body: {metadata: {name: 'enroll-tokens'}, stringData: tokens}, namespace})
  await core.createNamespacedPod({body: {metadata: {name: 'enroller'}, spec: {
    containers: [{
      command: ['sleep', '3600'], env: [{name: 'HOME', value: '/tmp'}, {name: 'SHELL', value: '/bin/sh'}, {name: 'ZTCTL_HOME', value: '/tmp'}], image, imagePullPolicy: 'Never', name: 'main',
      volumeMounts: [{mountPath: '/tokens', name: 'tokens'}],
    }],
    hostAliases: await controllerHostAliases(cluster), terminationGracePeriodSeconds: 0, volumes: [{name: 'tokens', secret: {secretName: 'enroll-tokens'}}],
  }}, namespace})
  await cluster.waitForPodReady(namespace, 'enroller')
  const identities: Record<string, string> = {}
  for (const name of names) {
    const enrolled = await cluster.exec(namespace, 'enroller', ['/app/bin/ztctl', 'enroll', `/tokens/${name}.jwt`, '--out', `/tmp/${name}.json`])
    assert.equal(enrolled.code, 0, enrolled.stdout + enrolled.stderr)
    identities[name] = (await cluster.exec(namespace, 'enroller', ['cat', `/tmp/${name}.json`])).stdout
  }

  return identities
}

// What only a node can tell: whether its CNI directories exist and hold a primary network configuration.
// precheck runs `ztctl cni check` in a short-lived pod per node (our image, the directories mounted read-only
// from the host, in a namespace of its own that it deletes afterwards) and reads the answer from its log.
import {randomBytes} from 'node:crypto'

import {forNode} from '../manifest/host-dirs.js'
import {imageOf, type InstallValues, type KubeObject, PART_OF_LABEL} from '../manifest/objects.js'
import type {KubeClient} from '../rest.js'
import {sleep, waitGone} from './apply.js'
import {describePod} from './rollout.js'

export interface NodeCniResult {
  node: string
  /** what is missing; empty when the node is ready */
  problems: string[]
  /** the primary CNI configuration (first file) when found */
  primary?: string
  /** the node could not be asked (pod did not run): why */
  unknown?: string
}

const PROBE_TIMEOUT_MS = 60_000

export async function probeNodeCni(kube: KubeClient, values: InstallValues, nodes: string[]): Promise<NodeCniResult[]> {
  const namespace = `ztctl-precheck-${randomBytes(3).toString('hex')}`
  await kube.request('POST', '/api/v1/namespaces', {body: {apiVersion: 'v1', kind: 'Namespace', metadata: {labels: {[PART_OF_LABEL]: 'ztctl'}, name: namespace}}, what: `create namespace ${namespace}`})
  try {
    await waitForServiceAccount(kube, namespace)
    return await Promise.all(nodes.map((node, index) => probeNode(kube, values, namespace, `cni-check-${index}`, node)))
  } finally {
    // Leave nothing behind: wait (briefly) until the namespace and its pods are gone.
    await kube.request('DELETE', `/api/v1/namespaces/${namespace}`, {what: `delete namespace ${namespace}`}).catch(() => {})
    await waitGone(kube, [{kind: 'Namespace', metadata: {name: namespace}}], Date.now() + 30_000)
  }
}

async function probeNode(kube: KubeClient, values: InstallValues, namespace: string, name: string, node: string): Promise<NodeCniResult> {
  const pod: KubeObject = {
    apiVersion: 'v1', kind: 'Pod', metadata: {name, namespace},
    spec: {
      automountServiceAccountToken: false,
      containers: [{
        args: ['cni', 'check', '--conf-dir', '/host/cni/net.d', '--bin-dir', '/host/cni/bin', '--json'],
        env: [{name: 'HOME', value: '/tmp'}, {name: 'NO_COLOR', value: '1'}, {name: 'SHELL', value: '/bin/sh'}, {name: 'ZTCTL_HOME', value: '/tmp'}],
        image: imageOf(values, values.cni.image),
        imagePullPolicy: values.image.pullPolicy,
        name: 'check',
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: ['ALL']}, readOnlyRootFilesystem: true, runAsNonRoot: true, runAsUser: 65_532},
        volumeMounts: [{mountPath: '/host/cni/net.d', name: 'conf', readOnly: true}, {mountPath: '/host/cni/bin', name: 'bin', readOnly: true}, {mountPath: '/tmp', name: 'tmp'}],
      }],
      nodeName: node,
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 0,
      tolerations: [{operator: 'Exists'}],
      volumes: [
        {hostPath: {path: forNode(values.cni.confDir, node), type: 'Directory'}, name: 'conf'},
        {hostPath: {path: forNode(values.cni.binDir, node), type: 'Directory'}, name: 'bin'},
        {emptyDir: {}, name: 'tmp'},
      ],
    },
  }
  await kube.request('POST', `/api/v1/namespaces/${namespace}/pods`, {body: pod, what: `create pod ${namespace}/${name}`})
  const deadline = Date.now() + PROBE_TIMEOUT_MS
  while (true) {
    const live = await kube.request<KubeObject>('GET', `/api/v1/namespaces/${namespace}/pods/${name}`, {what: `read pod ${namespace}/${name}`})
    const phase = (live.status as {phase?: string} | undefined)?.phase
    if (phase === 'Succeeded' || phase === 'Failed') {
      const log = await kube.request<string>('GET', `/api/v1/namespaces/${namespace}/pods/${name}/log`, {text: true, what: `read the log of pod ${name}`})
      try {
        const findings = JSON.parse(log) as {configs: string[]; problems: string[]}
        return {node, primary: findings.configs[0], problems: findings.problems}
      } catch {
        return {node, problems: [], unknown: `the check printed no result: ${log.trim().split('\n').at(-1) ?? ''}`}
      }
    }

    // A missing directory never mounts: the FailedMount event names it.
    const problem = await describePod(kube, live, 0)
    const missing = /hostPath type check failed: (\S+) is not a directory/.exec(problem?.message ?? '')
    if (missing) return {node, problems: [`${missing[1]} does not exist on the node`]}
    if (problem?.terminal || Date.now() > deadline) return {node, problems: [], unknown: problem?.message ?? 'the check pod did not run in time'}
    await sleep(500)
  }
}

async function waitForServiceAccount(kube: KubeClient, namespace: string): Promise<void> {
  // Pods are refused until the namespace's default ServiceAccount exists.
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    const found = await kube.request('GET', `/api/v1/namespaces/${namespace}/serviceaccounts/default`, {what: 'read the default ServiceAccount'}).then(() => true, () => false)
    if (found) return
    await sleep(200)
  }
}

// The informer → workload mapping on pods and namespaces shaped as the API server returns them (JSON of
// `kubectl get pod -o json` from the test cluster, trimmed to what a pod has), and how the CLI picks a
// cluster and a pod.
import assert from 'node:assert/strict'
import {describe, test} from 'node:test'

import type {V1EndpointSlice, V1Namespace, V1Pod, V1Service} from '@kubernetes/client-node'

import {chooseCluster, parsePodRef} from '../../src/lib/kube/node-agents.js'
import {desiredWorkloads, nodeAgentAddresses, nodeAgentName, podIps, podsOn, podWorkload, sameWorkload, servicesByPod} from '../../src/lib/kube/workloads.js'

const namespace = (name: string, labels?: Record<string, string>): V1Namespace =>
  JSON.parse(JSON.stringify({apiVersion: 'v1', kind: 'Namespace', metadata: {labels: {'kubernetes.io/metadata.name': name, ...labels}, name, resourceVersion: '412', uid: `ns-${name}`}, spec: {finalizers: ['kubernetes']}, status: {phase: 'Active'}}))

interface PodOptions {annotations?: Record<string, string>; hostNetwork?: boolean; ip?: string; node?: string; phase?: string; sa?: string}
function pod(ns: string, name: string, options: PodOptions = {}): V1Pod {
  const ip = options.ip ?? '10.244.1.7'
  return JSON.parse(JSON.stringify({
    apiVersion: 'v1', kind: 'Pod',
    metadata: {annotations: options.annotations, creationTimestamp: '2026-12-02T00:40:00Z', labels: {app: name}, name, namespace: ns, resourceVersion: '977', uid: `uid-${ns}-${name}`},
    spec: {
      containers: [{command: ['sleep', '3600'], image: 'ztctl.local/ztctl:0.1.0', imagePullPolicy: 'Never', name}],
      dnsPolicy: 'ClusterFirst', enableServiceLinks: true, hostNetwork: options.hostNetwork, nodeName: options.node ?? 'node-1', restartPolicy: 'Always',
      serviceAccount: options.sa ?? 'default', serviceAccountName: options.sa, terminationGracePeriodSeconds: 0,
    },
    status: {
      conditions: [{status: 'True', type: 'Ready'}], hostIP: '10.99.0.2', phase: options.phase ?? 'Running', podIP: ip || undefined,
      podIPs: ip ? [{ip}] : undefined, qosClass: 'BestEffort', startTime: '2026-12-02T00:40:01Z',
    },
  }))
}

const AMBIENT = {'ztctl.io/dataplane-mode': 'ambient'}
const view = (namespaces: V1Namespace[], pods: V1Pod[], services: V1Service[] = [], slices: V1EndpointSlice[] = []) => ({
  endpointSlices: () => slices, namespace: (name: string) => namespaces.find((item) => item.metadata?.name === name), pods: () => pods, services: () => services,
})

describe('podWorkload', () => {
  test('an enrolled pod becomes a workload keyed by its uid, served by its node\'s agent', () => {
    const workload = podWorkload(pod('shop', 'web', {sa: 'web-sa'}), namespace('shop', AMBIENT), (node) => `10.244.1.2:15008 of ${node}`)
    assert.deepEqual(workload, {hbone: '10.244.1.2:15008 of node-1', ips: ['10.244.1.7'], name: 'web', namespace: 'shop', node: 'node-node-1', serviceAccount: 'web-sa', uid: 'uid-shop-web'})
    assert.equal(nodeAgentName('node-2'), 'node-node-2')
  })

  test('a pod without a serviceAccountName runs as default', () => {
    assert.equal(podWorkload(pod('shop', 'web'), namespace('shop', AMBIENT), () => '')?.serviceAccount, 'default')
  })

  test('not a workload: unlabelled namespace, opt-out, hostNetwork, finished, no IP yet, not scheduled', () => {
    const ns = namespace('shop', AMBIENT)
    assert.equal(podWorkload(pod('shop', 'web'), namespace('shop'), () => ''), undefined, 'namespace without the label')
    assert.equal(podWorkload(pod('shop', 'web'), undefined, () => ''), undefined, 'namespace not in the cache yet')
    assert.equal(podWorkload(pod('shop', 'web', {annotations: {'ztctl.io/redirection': 'disabled'}}), ns, () => ''), undefined, 'opted out')
    assert.equal(podWorkload(pod('shop', 'web', {hostNetwork: true}), ns, () => ''), undefined, 'hostNetwork')
    assert.equal(podWorkload(pod('shop', 'web', {phase: 'Succeeded'}), ns, () => ''), undefined, 'finished')
    assert.equal(podWorkload(pod('shop', 'web', {ip: '', phase: 'Pending'}), ns, () => ''), undefined, 'no address yet')
    const unscheduled = pod('shop', 'web')
    delete unscheduled.spec!.nodeName
    assert.equal(podWorkload(unscheduled, ns, () => ''), undefined, 'not scheduled')
  })

  test('dual-stack pods list every address once', () => {
    const dual = pod('shop', 'web')
    dual.status!.podIPs = [{ip: '10.244.1.7'}, {ip: 'fd00::7'}, {ip: '10.244.1.7'}]
    assert.deepEqual(podIps(dual), ['10.244.1.7', 'fd00::7'])
  })
})

describe('desiredWorkloads', () => {
  const agent = (node: string, ip: string, phase = 'Running') => {
    const p = pod('ztctl-system', `ztctl-node-${node}`, {ip, node, phase, sa: 'ztctl-node'})
    return p
  }

  test('every enrolled pod of the cluster, with the HBONE address of the agent on its node; the install namespace never', () => {
    const namespaces = [namespace('shop', AMBIENT), namespace('plain'), namespace('ztctl-system', AMBIENT), namespace('mesh', AMBIENT)]
    const pods = [
      pod('shop', 'web', {ip: '10.244.1.7'}), pod('shop', 'db', {ip: '10.244.2.9', node: 'node-2'}), pod('plain', 'legacy', {ip: '10.244.1.8'}),
      agent('node-1', '10.244.1.2'), agent('node-2', '10.244.2.2', 'Pending'), pod('mesh', 'api', {ip: '10.244.1.9'}),
    ]
    const desired = desiredWorkloads(view(namespaces, pods), {installNamespace: 'ztctl-system'})
    assert.deepEqual([...desired.keys()].sort(), ['uid-mesh-api', 'uid-shop-db', 'uid-shop-web'])
    assert.equal(desired.get('uid-shop-web')!.hbone, '10.244.1.2:15008')
    assert.equal(desired.get('uid-shop-db')!.hbone, '', 'the agent of node-2 does not run yet')
    const renamed = desiredWorkloads(view([namespace('mesh-system', AMBIENT)], [pod('mesh-system', 'x')]), {installNamespace: 'mesh-system'})
    assert.equal(renamed.size, 0, 'an install in another namespace excludes that one')
  })

  test('node agents are found by ServiceAccount in the install namespace, IPv6 in brackets', () => {
    const agents = nodeAgentAddresses([agent('node-1', 'fd00::2'), pod('other', 'ztctl-node-fake', {ip: '10.0.0.66', sa: 'ztctl-node'})], 'ztctl-system')
    assert.deepEqual([...agents], [['node-1', '[fd00::2]:15008']])
  })

  test('sameWorkload compares every field (so an unchanged pod is not written again)', () => {
    const a = podWorkload(pod('shop', 'web'), namespace('shop', AMBIENT), () => 'x:15008')!
    assert.ok(sameWorkload(a, JSON.parse(JSON.stringify(a))))
    assert.ok(!sameWorkload(a, {...a, ips: ['10.244.1.70']}))
    assert.ok(!sameWorkload(a, {...a, hbone: ''}))
  })
})

describe('Services → the workloads behind them', () => {
  // As the API server returns them on Kubernetes 1.20: a Service with a named and a numbered port, its
  // EndpointSlice (discovery.k8s.io/v1beta1) with one ready and one not-ready pod.
  const service = (name: string, spec: Record<string, unknown>): V1Service => JSON.parse(JSON.stringify({
    apiVersion: 'v1', kind: 'Service', metadata: {name, namespace: 'shop', uid: `svc-${name}`},
    spec: {clusterIP: '10.96.0.12', clusterIPs: ['10.96.0.12'], ports: [{name: 'http', port: 80, protocol: 'TCP', targetPort: 'web'}, {name: 'metrics', port: 9090, protocol: 'TCP', targetPort: 9100}, {name: 'dns', port: 53, protocol: 'UDP', targetPort: 53}], selector: {app: 'web'}, sessionAffinity: 'None', type: 'ClusterIP', ...spec},
  }))
  const slice = (serviceName: string, endpoints: {ready: boolean; uid: string}[]): V1EndpointSlice => JSON.parse(JSON.stringify({
    addressType: 'IPv4', apiVersion: 'discovery.k8s.io/v1beta1', kind: 'EndpointSlice',
    endpoints: endpoints.map(({ready, uid}) => ({addresses: ['10.244.1.7'], conditions: {ready}, targetRef: {kind: 'Pod', name: uid, namespace: 'shop', uid}, topology: {'kubernetes.io/hostname': 'node-1'}})),
    metadata: {generateName: `${serviceName}-`, labels: {'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io', 'kubernetes.io/service-name': serviceName}, name: `${serviceName}-x7k2p`, namespace: 'shop'},
    ports: [{name: 'http', port: 8080, protocol: 'TCP'}, {name: 'metrics', port: 9100, protocol: 'TCP'}, {name: 'dns', port: 53, protocol: 'UDP'}],
  }))

  test('each ready endpoint pod gets the ClusterIP and every TCP service port with its pod port (named ports resolved by the slice)', () => {
    const byPod = servicesByPod([service('web', {})], [slice('web', [{ready: true, uid: 'uid-shop-web'}, {ready: false, uid: 'uid-shop-starting'}])])
    assert.deepEqual([...byPod], [['uid-shop-web', [{name: 'shop/web', ports: [{port: 80, targetPort: 8080}, {port: 9090, targetPort: 9100}], vips: ['10.96.0.12']}]]])
  })

  test('headless Services and slices of unknown Services are left out', () => {
    assert.equal(servicesByPod([service('web', {clusterIP: 'None', clusterIPs: ['None']})], [slice('web', [{ready: true, uid: 'a'}])]).size, 0)
    assert.equal(servicesByPod([], [slice('web', [{ready: true, uid: 'a'}])]).size, 0)
  })

  test('desiredWorkloads carries them on the workload', () => {
    const workloads = desiredWorkloads(view([namespace('shop', AMBIENT)], [pod('shop', 'web')], [service('web', {})], [slice('web', [{ready: true, uid: 'uid-shop-web'}])]), {installNamespace: 'ztctl-system'})
    const web = workloads.get('uid-shop-web')!
    assert.deepEqual(web.services?.map((entry) => entry.name), ['shop/web'])
    assert.ok(!sameWorkload(web, {...web, services: undefined}), 'a change of services is a change')
    assert.ok(sameWorkload({...web, services: []}, {...web, services: undefined}), 'none and [] are the same (the CRD defaults the list)')
  })
})

test('podsOn: pods of one namespace and service account on one node, not finished ones', () => {
  const pods = [pod('shop', 'a', {sa: 'web'}), pod('shop', 'b', {node: 'node-2', sa: 'web'}), pod('shop', 'c', {phase: 'Failed', sa: 'web'}), pod('shop', 'd'), pod('other', 'e', {sa: 'web'})]
  assert.deepEqual(podsOn(pods, 'node-1', 'shop', 'web').map((item) => item.metadata!.name), ['a'])
  assert.deepEqual(podsOn(pods, 'node-1', 'shop', 'default').map((item) => item.metadata!.name), ['d'])
  assert.deepEqual(podsOn(pods, 'node-3', 'shop', 'web'), [])
})

describe('the CLI in a cluster', () => {
  test('POD[.NAMESPACE]: the namespace after the first dot, else -n, else default; garbage is a usage error', () => {
    assert.deepEqual(parsePodRef('web-5d8f.shop'), {name: 'web-5d8f', namespace: 'shop'})
    assert.deepEqual(parsePodRef('web', 'shop'), {name: 'web', namespace: 'shop'})
    assert.deepEqual(parsePodRef('web'), {name: 'web', namespace: 'default'})
    assert.throws(() => parsePodRef('Web!.x'), {code: 'ZT_ERR_USAGE', message: /"Web!\.x" is not POD\[\.NAMESPACE\]/})
    assert.throws(() => parsePodRef('web.'), {code: 'ZT_ERR_USAGE'})
  })

  test('a cluster is chosen by a Kubernetes flag or a context of kind kubernetes, never by $KUBECONFIG alone', () => {
    assert.equal(chooseCluster({kubeconfigEnv: '/k/config'}), undefined, 'only $KUBECONFIG: the local agent, as before')
    assert.deepEqual(chooseCluster({kubeconfigEnv: '/k/config', node: 'node-1'}), {context: undefined, installNamespace: 'ztctl-system', kubeconfig: '/k/config'})
    assert.deepEqual(chooseCluster({kubeconfigFlag: '/a', kubeContext: 'kind'}), {context: 'kind', installNamespace: 'ztctl-system', kubeconfig: '/a'})
    const context = {context: 'prod', kubeconfig: '/p', namespace: 'mesh'}
    assert.deepEqual(chooseCluster({context}), {context: 'prod', installNamespace: 'mesh', kubeconfig: '/p'})
    assert.deepEqual(chooseCluster({context, namespace: 'shop'}), {context: 'prod', installNamespace: 'mesh', kubeconfig: '/p'}, '-n is the pod namespace, the install stays the context\'s')
    assert.deepEqual(chooseCluster({context, kubeconfigFlag: '/other'}), {context: undefined, installNamespace: 'mesh', kubeconfig: '/other'}, 'another kubeconfig: its own current context')
  })
})

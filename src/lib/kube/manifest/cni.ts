// The CNI agent: one privileged host-network pod per node (DaemonSet ztctl-cni). It installs ztctl's plugin
// into the node's plugin directory, chains it into the node's .conflist, and redirects enrolled pods in their
// network namespaces (src/lib/cni/agent.ts). It reads pods and namespaces (enrollment) and its own DaemonSet
// (a stop with the DaemonSet gone is an uninstall), so it has a ServiceAccount token and RBAC for that.
import {commonEnv} from './controller.js'
import {nodeSubdirVolume, sharedHostMounts} from './host-dirs.js'
import {perNodeWorkload} from './node-agent.js'
import {fieldRef, imageOf, type InstallValues, installLabels, type Rendered, resourcesOf} from './objects.js'

export const CNI_NAME = 'ztctl-cni'
const HOST_CONF_DIR = '/host/cni/net.d'
const HOST_BIN_DIR = '/host/cni/bin'

export function renderCni(values: InstallValues): Rendered[] {
  if (!values.cni.enabled) return []
  const port = values.cni.readinessPort
  const shared = sharedHostMounts(values)
  const conf = nodeSubdirVolume('cni-conf', values.cni.confDir, HOST_CONF_DIR)
  const bin = nodeSubdirVolume('cni-bin', values.cni.binDir, HOST_BIN_DIR)
  const excluded = [...new Set([...values.cni.excludedNamespaces, values.namespace])]
  const [serviceAccount, daemonSet] = perNodeWorkload(values, 'cni', CNI_NAME, values.cni.nodeSelector, {
    // the agent reads pods and namespaces: the ServiceAccount's own token, nothing projected
    automountServiceAccountToken: true,
    containers: [{
      // In the host network, POD_IP is the node's address: the readiness port is bound there only.
      args: [
        'cni', 'run', '--conf-dir', HOST_CONF_DIR, '--bin-dir', HOST_BIN_DIR, '--readiness', `$(POD_IP):${port}`,
        '--run-dir', values.cni.runDir, '--netns-dir', values.cni.netnsDir, ...excluded.flatMap((ns) => ['--exclude-namespace', ns]),
      ],
      env: [fieldRef('NODE_NAME', 'spec.nodeName'), fieldRef('POD_IP', 'status.podIP'), fieldRef('POD_NAMESPACE', 'metadata.namespace'), ...commonEnv(values)],
      image: imageOf(values, values.cni.image),
      imagePullPolicy: values.image.pullPolicy,
      name: 'cni',
      readinessProbe: {failureThreshold: 3, httpGet: {path: '/healthz/ready', port}, periodSeconds: 2},
      resources: resourcesOf(values.cni.resources),
      securityContext: {privileged: true, readOnlyRootFilesystem: true},
      volumeMounts: [
        conf.mount,
        bin.mount,
        ...shared.mounts,
        {mountPath: '/tmp', name: 'tmp'},
        // iptables-legacy takes its lock in /run (the root filesystem is read-only)
        {mountPath: '/run', name: 'run'},
      ],
    }],
    dnsPolicy: 'ClusterFirstWithHostNet',
    hostNetwork: true,
    // long enough to take every pod of the node back to plain networking on uninstall
    terminationGracePeriodSeconds: 30,
    // type Directory: a node without these directories fails the pod with a clear event
    // instead of getting empty directories created on it.
    volumes: [
      conf.volume,
      bin.volume,
      ...shared.volumes,
      {emptyDir: {}, name: 'tmp'},
      {emptyDir: {medium: 'Memory'}, name: 'run'},
    ],
  })
  return [serviceAccount, ...cniRbac(values), daemonSet]
}

function cniRbac(values: InstallValues): Rendered[] {
  const labels = installLabels('cni')
  const ns = values.namespace
  const subjects = [{kind: 'ServiceAccount', name: CNI_NAME, namespace: ns}]
  const rbac = (kind: string, extra: Record<string, unknown>): Rendered => ({component: 'core', object: {apiVersion: 'rbac.authorization.k8s.io/v1', kind, metadata: {labels, name: CNI_NAME, ...(kind.startsWith('Cluster') ? {} : {namespace: ns})}, ...extra}})
  return [
    rbac('ClusterRole', {rules: [{apiGroups: [''], resources: ['pods', 'namespaces'], verbs: ['get', 'list', 'watch']}]}),
    rbac('ClusterRoleBinding', {roleRef: {apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: CNI_NAME}, subjects}),
    rbac('Role', {rules: [{apiGroups: ['apps'], resourceNames: [CNI_NAME], resources: ['daemonsets'], verbs: ['get']}]}),
    rbac('RoleBinding', {roleRef: {apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: CNI_NAME}, subjects}),
  ]
}

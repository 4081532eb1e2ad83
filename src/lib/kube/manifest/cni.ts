// The CNI agent: one privileged host-network pod per node (DaemonSet ztctl-cni) that sees the node's CNI
// directories. Today it checks them and reports ready when the node has a CNI configuration; Kubernetes II
// gives it its real job (chaining ztctl's plugin and setting up in-pod redirection).
import {commonEnv} from './controller.js'
import {perNodeWorkload} from './node-agent.js'
import {fieldRef, imageOf, type InstallValues, type Rendered, resourcesOf} from './objects.js'

export const CNI_NAME = 'ztctl-cni'
const HOST_CONF_DIR = '/host/cni/net.d'
const HOST_BIN_DIR = '/host/cni/bin'

export function renderCni(values: InstallValues): Rendered[] {
  if (!values.cni.enabled) return []
  const port = values.cni.readinessPort
  return perNodeWorkload(values, 'cni', CNI_NAME, values.cni.nodeSelector, {
    containers: [{
      // In the host network, POD_IP is the node's address: the readiness port is bound there only.
      args: ['cni', 'run', '--conf-dir', HOST_CONF_DIR, '--bin-dir', HOST_BIN_DIR, '--readiness', `$(POD_IP):${port}`],
      env: [fieldRef('NODE_NAME', 'spec.nodeName'), fieldRef('POD_IP', 'status.podIP'), ...commonEnv(values)],
      image: imageOf(values, values.cni.image),
      imagePullPolicy: values.image.pullPolicy,
      name: 'cni',
      readinessProbe: {failureThreshold: 3, httpGet: {path: '/healthz/ready', port}, periodSeconds: 2},
      resources: resourcesOf(values.cni.resources),
      securityContext: {privileged: true, readOnlyRootFilesystem: true},
      volumeMounts: [
        {mountPath: HOST_CONF_DIR, name: 'cni-conf', readOnly: true},
        {mountPath: HOST_BIN_DIR, name: 'cni-bin', readOnly: true},
        {mountPath: '/tmp', name: 'tmp'},
      ],
    }],
    dnsPolicy: 'ClusterFirstWithHostNet',
    hostNetwork: true,
    terminationGracePeriodSeconds: 5,
    // type Directory: a node without these directories fails the pod with a clear event
    // instead of getting empty directories created on it.
    volumes: [
      {hostPath: {path: values.cni.confDir, type: 'Directory'}, name: 'cni-conf'},
      {hostPath: {path: values.cni.binDir, type: 'Directory'}, name: 'cni-bin'},
      {emptyDir: {}, name: 'tmp'},
    ],
  })
}

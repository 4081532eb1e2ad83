// The node agent: one pod per node (DaemonSet ztctl-node) carrying HBONE on 15008. It has no identity file:
// it enrolls with its projected ServiceAccount token (audience ztctl) and the controller learns its node
// from a TokenReview (K8S-CONTRACT.md fixes the args, ports and volumes). It serves the in-pod redirection
// of its node's enrolled pods: the CNI agent tells it each pod on the in-pod socket in the shared run
// directory, and it opens the pod's listeners inside the pod's netns — which needs root with NET_ADMIN
// (SO_MARK), SYS_ADMIN (setns) and NET_RAW, and both host directories (K8S-CONTRACT.md, k8s2a's part).
import path from 'node:path'

import {NODE_AGENT_SERVICE_ACCOUNT, NODE_CA_PATH, NODE_TOKEN_PATH, RUNTIME_OBJECTS, TOKEN_AUDIENCE} from '../objects.js'
import {commonEnv, nodeSelector, pullSecrets, restrictedContainer, restrictedPod, ZTCTL_HOME} from './controller.js'
import {sharedHostMounts} from './host-dirs.js'
import {hubArgs} from './hub.js'
import {type Component, fieldRef, imageOf, type InstallValues, installLabels, podLabels, type Rendered, resourcesOf} from './objects.js'

export const NODE_AGENT_NAME = NODE_AGENT_SERVICE_ACCOUNT
export const CA_ROOT_CONFIGMAP = RUNTIME_OBJECTS.caRootConfigMap

export function renderNodeAgent(values: InstallValues): Rendered[] {
  if (!values.nodeAgent.enabled) return []
  const shared = sharedHostMounts(values)
  return perNodeWorkload(values, 'node-agent', NODE_AGENT_NAME, values.nodeAgent.nodeSelector, {
    containers: [{
      args: [
        'agent', 'run', '--kubernetes', '--controller', 'https://$(ZTCTL_CONTROLLER_SERVICE_HOST):$(ZTCTL_CONTROLLER_SERVICE_PORT)',
        '--hbone', '0.0.0.0:15008', '--admin', '127.0.0.1:15000', '--metrics', '0.0.0.0:15020', '--readiness', '0.0.0.0:15021',
        '--inpod-socket', path.posix.join(values.cni.runDir, 'inpod.sock'), '--inpod-state-dir', path.posix.join(values.cni.runDir, 'inpod'),
        ...hubArgs(values),
      ],
      env: [
        fieldRef('NODE_NAME', 'spec.nodeName'), fieldRef('POD_NAME', 'metadata.name'),
        fieldRef('POD_NAMESPACE', 'metadata.namespace'), fieldRef('POD_IP', 'status.podIP'), ...commonEnv(values),
      ],
      image: imageOf(values, values.nodeAgent.image),
      imagePullPolicy: values.image.pullPolicy,
      name: 'agent',
      ports: [
        {containerPort: 15_008, name: 'hbone', protocol: 'TCP'},
        {containerPort: 15_020, name: 'http-metrics', protocol: 'TCP'},
        {containerPort: 15_021, name: 'http-readiness', protocol: 'TCP'},
      ],
      readinessProbe: {failureThreshold: 3, httpGet: {path: '/healthz/ready', port: 15_021}, periodSeconds: 2},
      resources: resourcesOf(values.nodeAgent.resources),
      securityContext: {...restrictedContainer(), capabilities: {add: ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN'], drop: ['ALL']}},
      volumeMounts: [
        {mountPath: path.posix.dirname(NODE_TOKEN_PATH), name: 'ztctl-token', readOnly: true},
        {mountPath: path.posix.dirname(NODE_CA_PATH), name: 'ca-root', readOnly: true},
        {mountPath: '/tmp', name: 'tmp'},
        {mountPath: ZTCTL_HOME, name: 'home'},
        ...shared.mounts,
      ],
    }],
    securityContext: {runAsGroup: 0, runAsNonRoot: false, runAsUser: 0, seccompProfile: restrictedPod().seccompProfile},
    terminationGracePeriodSeconds: 30,
    volumes: [
      {name: 'ztctl-token', projected: {sources: [{serviceAccountToken: {audience: TOKEN_AUDIENCE, expirationSeconds: 3600, path: path.posix.basename(NODE_TOKEN_PATH)}}]}},
      {configMap: {name: CA_ROOT_CONFIGMAP, optional: true}, name: 'ca-root'},
      {emptyDir: {}, name: 'tmp'},
      {emptyDir: {}, name: 'home'},
      ...shared.volumes,
    ],
  })
}

/**
 * A ServiceAccount and a DaemonSet running `pod` on every node (every taint tolerated, node-critical), one
 * node at a time on upgrade. Only the tokens the pod mounts itself are mounted: neither agent calls the API.
 */
export function perNodeWorkload(values: InstallValues, component: Component, name: string, selector: Record<string, string>, pod: Record<string, unknown>): Rendered[] {
  const ns = values.namespace
  const labels = installLabels(component)
  return [
    {component: 'core', object: {apiVersion: 'v1', automountServiceAccountToken: false, kind: 'ServiceAccount', metadata: {labels, name, namespace: ns}}},
    {
      component,
      object: {
        apiVersion: 'apps/v1',
        kind: 'DaemonSet',
        metadata: {labels, name, namespace: ns},
        spec: {
          selector: {matchLabels: {'app.kubernetes.io/name': name}},
          template: {
            metadata: {labels: podLabels(component, name)},
            spec: {
              automountServiceAccountToken: false,
              ...pod,
              ...pullSecrets(values),
              ...nodeSelector(selector),
              priorityClassName: 'system-node-critical',
              serviceAccountName: name,
              tolerations: [{operator: 'Exists'}],
            },
          },
          updateStrategy: {rollingUpdate: {maxUnavailable: 1}, type: 'RollingUpdate'},
        },
      },
    },
  ]
}

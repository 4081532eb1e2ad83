// The node agent: one pod per node (DaemonSet ztctl-node) carrying HBONE on 15008. It has no identity file:
// it enrolls with its projected ServiceAccount token (audience ztctl) and the controller learns its node
// from a TokenReview (K8S-CONTRACT.md fixes the args, ports and volumes).
import {commonEnv, nodeSelector, pullSecrets, restrictedContainer, restrictedPod} from './controller.js'
import {fieldRef, imageOf, type InstallValues, installLabels, podLabels, type Rendered, resourcesOf} from './objects.js'

export const NODE_AGENT_NAME = 'ztctl-node'
export const CA_ROOT_CONFIGMAP = 'ztctl-ca-root'

/** A node agent or CNI agent must run on every node, whatever its taints. */
export const EVERY_NODE = {priorityClassName: 'system-node-critical', tolerations: [{operator: 'Exists'}]}

export function renderNodeAgent(values: InstallValues): Rendered[] {
  if (!values.nodeAgent.enabled) return []
  const ns = values.namespace
  const labels = installLabels('node-agent')
  const selector = {'app.kubernetes.io/name': NODE_AGENT_NAME}
  return [
    {component: 'core', object: {apiVersion: 'v1', automountServiceAccountToken: false, kind: 'ServiceAccount', metadata: {labels, name: NODE_AGENT_NAME, namespace: ns}}},
    {
      component: 'node-agent',
      object: {
        apiVersion: 'apps/v1',
        kind: 'DaemonSet',
        metadata: {labels, name: NODE_AGENT_NAME, namespace: ns},
        spec: {
          selector: {matchLabels: selector},
          template: {
            metadata: {labels: podLabels('node-agent', NODE_AGENT_NAME)},
            spec: {
              // Only the projected token below (audience ztctl) is mounted: the agent never calls the API server.
              automountServiceAccountToken: false,
              containers: [{
                args: [
                  'agent', 'run', '--kubernetes', '--controller', 'https://$(ZTCTL_CONTROLLER_SERVICE_HOST):$(ZTCTL_CONTROLLER_SERVICE_PORT)',
                  '--hbone', '0.0.0.0:15008', '--admin', '127.0.0.1:15000', '--metrics', '0.0.0.0:15020', '--readiness', '0.0.0.0:15021',
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
                securityContext: restrictedContainer(),
                volumeMounts: [
                  {mountPath: '/var/run/secrets/ztctl', name: 'ztctl-token', readOnly: true},
                  {mountPath: '/var/run/ztctl/ca', name: 'ca-root', readOnly: true},
                  {mountPath: '/tmp', name: 'tmp'},
                ],
              }],
              ...pullSecrets(values),
              ...nodeSelector(values.nodeAgent.nodeSelector),
              ...EVERY_NODE,
              securityContext: restrictedPod(),
              serviceAccountName: NODE_AGENT_NAME,
              terminationGracePeriodSeconds: 30,
              volumes: [
                {name: 'ztctl-token', projected: {sources: [{serviceAccountToken: {audience: 'ztctl', expirationSeconds: 3600, path: 'token'}}]}},
                {configMap: {name: CA_ROOT_CONFIGMAP, optional: true}, name: 'ca-root'},
                {emptyDir: {}, name: 'tmp'},
              ],
            },
          },
          updateStrategy: {rollingUpdate: {maxUnavailable: 1}, type: 'RollingUpdate'},
        },
      },
    },
  ]
}

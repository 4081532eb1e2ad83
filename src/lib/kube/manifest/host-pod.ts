// The host pod (OpenZiti's ziti-host, issue 12 §4): one agent in the install namespace with an ordinary
// mesh identity, `host`, that hosts services towards addresses inside the cluster — `ztctl tunnel open
// outbound tcp/web --agent host --target web.default.svc.cluster.local:80` — so identities outside the cluster
// reach cluster services through the mesh, with no LoadBalancer or NodePort. Its identity file is Secret
// ztctl-host, which the controller's leader keeps valid (as it keeps ztctl-admin) when install enables it.
import {RUNTIME_OBJECTS} from '../objects.js'
import {commonEnv, nodeSelector, pullSecrets, restrictedContainer, restrictedPod, ZTCTL_HOME} from './controller.js'
import {fieldRef, imageOf, type InstallValues, installLabels, podLabels, type Rendered, resourcesOf} from './objects.js'

export const HOST_POD_NAME = 'ztctl-host'
/** The Secret the controller writes the host identity into (key identity.json) and the pod mounts. */
export const HOST_IDENTITY_SECRET = RUNTIME_OBJECTS.hostIdentitySecret
const IDENTITY_DIR = '/var/run/ztctl/identity'

export function renderHostPod(values: InstallValues): Rendered[] {
  if (!values.hostPod.enabled) return []
  const ns = values.namespace
  const selector = {'app.kubernetes.io/name': HOST_POD_NAME}
  return [{
    component: 'host-pod',
    object: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {labels: installLabels('host-pod'), name: HOST_POD_NAME, namespace: ns},
      spec: {
        replicas: 1,
        selector: {matchLabels: selector},
        template: {
          metadata: {labels: podLabels('host-pod', HOST_POD_NAME)},
          spec: {
            automountServiceAccountToken: false,
            containers: [{
              args: [
                // The controller's Service by address (its environment variables): no cluster DNS needed.
                'agent', 'run', '-i', `${IDENTITY_DIR}/identity.json`, '--controller', 'https://$(ZTCTL_CONTROLLER_SERVICE_HOST):$(ZTCTL_CONTROLLER_SERVICE_PORT)',
                '--hbone', '0.0.0.0:15008', '--advertise', '$(POD_IP):15008',
                '--admin', '127.0.0.1:15000', '--metrics', '0.0.0.0:15020', '--readiness', '0.0.0.0:15021',
              ],
              env: [fieldRef('POD_IP', 'status.podIP'), ...commonEnv(values)],
              image: imageOf(values, values.hostPod.image),
              imagePullPolicy: values.image.pullPolicy,
              name: 'agent',
              ports: [{containerPort: 15_008, name: 'hbone', protocol: 'TCP'}, {containerPort: 15_020, name: 'http-metrics', protocol: 'TCP'}],
              readinessProbe: {failureThreshold: 3, httpGet: {path: '/healthz/ready', port: 15_021}, periodSeconds: 2},
              resources: resourcesOf(values.hostPod.resources),
              securityContext: restrictedContainer(),
              volumeMounts: [{mountPath: IDENTITY_DIR, name: 'identity', readOnly: true}, {mountPath: '/tmp', name: 'tmp'}, {mountPath: ZTCTL_HOME, name: 'home'}],
            }],
            ...pullSecrets(values),
            ...nodeSelector(values.hostPod.nodeSelector),
            securityContext: restrictedPod(),
            // The kubelet retries the mount until the controller's leader has written the Secret.
            volumes: [{name: 'identity', secret: {secretName: HOST_IDENTITY_SECRET}}, {emptyDir: {}, name: 'tmp'}, {emptyDir: {}, name: 'home'}],
          },
        },
      },
    },
  }]
}

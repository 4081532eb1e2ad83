// The host pod (OpenZiti's ziti-host, issue 12 §4): one agent in the install namespace with an ordinary
// mesh identity, `host`, that hosts services towards addresses inside the cluster — `ztctl tunnel open
// outbound tcp/web --agent host --target web.default.svc.cluster.local:80` — so identities outside the cluster
// reach cluster services through the mesh, with no LoadBalancer or NodePort. Its identity file is Secret
// ztctl-host, which the controller's leader keeps valid (as it keeps ztctl-admin) when install enables it.
import {RUNTIME_OBJECTS} from '../objects.js'
import {hubArgs} from './hub.js'
import {CONTROLLER_BY_SERVICE, identityDeployment, IDENTITY_FILE} from './identity-workload.js'
import type {InstallValues, Rendered} from './objects.js'

export const HOST_POD_NAME = 'ztctl-host'
/** The Secret the controller writes the host identity into (key identity.json) and the pod mounts. */
export const HOST_IDENTITY_SECRET = RUNTIME_OBJECTS.hostIdentitySecret

export function renderHostPod(values: InstallValues): Rendered[] {
  if (!values.hostPod.enabled) return []
  return [identityDeployment(values, {
    args: [
      'agent', 'run', '-i', IDENTITY_FILE, '--controller', CONTROLLER_BY_SERVICE,
      '--hbone', '0.0.0.0:15008', '--advertise', '$(POD_IP):15008',
      '--admin', '127.0.0.1:15000', '--metrics', '0.0.0.0:15020', '--readiness', '0.0.0.0:15021',
      ...hubArgs(values),
    ],
    component: 'host-pod',
    name: HOST_POD_NAME,
    ports: [{containerPort: 15_008, name: 'hbone', protocol: 'TCP'}, {containerPort: 15_020, name: 'http-metrics', protocol: 'TCP'}],
    readinessProbe: {failureThreshold: 3, httpGet: {path: '/healthz/ready', port: 15_021}, periodSeconds: 2},
    secret: HOST_IDENTITY_SECRET,
    settings: values.hostPod,
  })]
}

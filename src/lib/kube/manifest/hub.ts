// The hub (issue 15, `--set hub.enabled=true`): `ztctl hub run` as identity `hub` (role hub) in a one-replica
// Deployment behind ClusterIP Service ztctl-hub on 15009. Its identity file is Secret ztctl-hub, which the
// controller's leader issues and keeps valid (as it keeps the host pod's): nothing to enroll by hand, and the
// key never leaves the namespace. The node agents and the host pod attach to it (`--hub hub@…`, the name
// pinned), found by the Service's environment variables (applied before them: no cluster DNS needed). Agents
// elsewhere that open no port attach to it too, through whatever reaches the Service (a port-forward, an
// Ingress for TLS passthrough). One replica: a relay needs both agents attached to the same hub process.
import {HUB_IDENTITY, RUNTIME_OBJECTS} from '../objects.js'
import {CONTROLLER_BY_SERVICE, identityDeployment, IDENTITY_FILE} from './identity-workload.js'
import {type InstallValues, installLabels, type Rendered} from './objects.js'

export const HUB_NAME = 'ztctl-hub'
export const HUB_PORT = 15_009
export const HUB_IDENTITY_SECRET = RUNTIME_OBJECTS.hubIdentitySecret

export function renderHub(values: InstallValues): Rendered[] {
  if (!values.hub.enabled) return []
  const ns = values.namespace
  return [
    {
      component: 'hub',
      object: {
        apiVersion: 'v1', kind: 'Service', metadata: {labels: installLabels('hub'), name: HUB_NAME, namespace: ns},
        spec: {ports: [{name: 'tls-hub', port: HUB_PORT, protocol: 'TCP', targetPort: 'tls-hub'}], selector: {'app.kubernetes.io/name': HUB_NAME}, type: 'ClusterIP'},
      },
    },
    identityDeployment(values, {
      args: [
        'hub', 'run', '-i', IDENTITY_FILE, '--controller', CONTROLLER_BY_SERVICE,
        '--listen', `0.0.0.0:${HUB_PORT}`, '--advertise', `$(POD_IP):${HUB_PORT}`, '--admin', '127.0.0.1:15010',
      ],
      component: 'hub',
      name: HUB_NAME,
      ports: [{containerPort: HUB_PORT, name: 'tls-hub', protocol: 'TCP'}],
      // Ready once it listens (it refuses relays it cannot authorize until its configuration arrived).
      readinessProbe: {failureThreshold: 3, periodSeconds: 2, tcpSocket: {port: HUB_PORT}},
      secret: HUB_IDENTITY_SECRET,
      settings: values.hub,
    }),
  ]
}

/** `--hub` for the agents in the cluster when the hub is installed: its Service by address, its identity pinned. */
export function hubArgs(values: InstallValues): string[] {
  return values.hub.enabled ? ['--hub', `${HUB_IDENTITY}@$(ZTCTL_HUB_SERVICE_HOST):$(ZTCTL_HUB_SERVICE_PORT)`] : []
}

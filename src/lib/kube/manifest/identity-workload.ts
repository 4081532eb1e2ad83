// A one-replica Deployment in the install namespace that runs ztctl as an identity the controller's leader
// keeps valid in a Secret (key identity.json): the host pod (identity `host`) and the hub (identity `hub`).
// The pod reaches the controller by its Service's address (environment variables): no cluster DNS needed.
import {commonEnv, nodeSelector, pullSecrets, restrictedContainer, restrictedPod, ZTCTL_HOME} from './controller.js'
import {type Component, fieldRef, imageOf, type InstallValues, installLabels, podLabels, type Rendered, resourcesOf} from './objects.js'
import type {Resources} from './objects.js'

/** Where the pod mounts its identity Secret. */
export const IDENTITY_DIR = '/var/run/ztctl/identity'
export const IDENTITY_FILE = `${IDENTITY_DIR}/identity.json`
/** `--controller` for a pod: the controller's Service by address. */
export const CONTROLLER_BY_SERVICE = 'https://$(ZTCTL_CONTROLLER_SERVICE_HOST):$(ZTCTL_CONTROLLER_SERVICE_PORT)'

export interface IdentityWorkload {
  /** ztctl's arguments ($(POD_IP) is set) */
  args: string[]
  component: Component
  name: string
  ports: {containerPort: number; name: string; protocol: 'TCP'}[]
  readinessProbe: Record<string, unknown>
  secret: string
  /** the component's values: image override, node selector, resources */
  settings: {image: string; nodeSelector: Record<string, string>; resources: Resources}
}

export function identityDeployment(values: InstallValues, workload: IdentityWorkload): Rendered {
  const {component, name, settings} = workload
  return {
    component,
    object: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {labels: installLabels(component), name, namespace: values.namespace},
      spec: {
        replicas: 1,
        selector: {matchLabels: {'app.kubernetes.io/name': name}},
        template: {
          metadata: {labels: podLabels(component, name)},
          spec: {
            automountServiceAccountToken: false,
            containers: [{
              args: workload.args,
              env: [fieldRef('POD_IP', 'status.podIP'), ...commonEnv(values)],
              image: imageOf(values, settings.image),
              imagePullPolicy: values.image.pullPolicy,
              name: component === 'hub' ? 'hub' : 'agent',
              ports: workload.ports,
              readinessProbe: workload.readinessProbe,
              resources: resourcesOf(settings.resources),
              securityContext: restrictedContainer(),
              volumeMounts: [{mountPath: IDENTITY_DIR, name: 'identity', readOnly: true}, {mountPath: '/tmp', name: 'tmp'}, {mountPath: ZTCTL_HOME, name: 'home'}],
            }],
            ...pullSecrets(values),
            ...nodeSelector(settings.nodeSelector),
            securityContext: restrictedPod(),
            // The kubelet retries the mount until the controller's leader has written the Secret.
            volumes: [{name: 'identity', secret: {secretName: workload.secret}}, {emptyDir: {}, name: 'tmp'}, {emptyDir: {}, name: 'home'}],
          },
        },
      },
    },
  }
}

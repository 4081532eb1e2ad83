// The controller: ServiceAccount, RBAC (a Role for its state in the install namespace, a ClusterRole to
// review node-agent tokens and read the cluster), Service and Deployment (K8S-CONTRACT.md fixes names,
// ports and args). Its state lives in the API server, so any replica can be deleted or rescheduled.
import {CRD_GROUP} from '../crds.js'
import {CONTROLLER_PORT, CONTROLLER_SERVICE, RUNTIME_OBJECTS} from '../objects.js'
import {fieldRef, imageOf, type InstallValues, installLabels, type KubeObject, podLabels, type Rendered, resourcesOf} from './objects.js'

export const CONTROLLER_NAME = CONTROLLER_SERVICE
export const CONTROL_PORT = CONTROLLER_PORT
export const HEALTH_PORT = 15_014

const READ = ['get', 'list', 'watch']
const WRITE = [...READ, 'create', 'update', 'patch', 'delete']

export function renderController(values: InstallValues): Rendered[] {
  const ns = values.namespace
  const labels = installLabels('controller')
  const meta = (extra: Record<string, unknown> = {}) => ({labels, name: CONTROLLER_NAME, ...extra})
  const subject = [{kind: 'ServiceAccount', name: CONTROLLER_NAME, namespace: ns}]
  const core = (object: KubeObject): Rendered => ({component: 'core', object})
  const own = (object: KubeObject): Rendered => ({component: 'controller', object})
  return [
    core({apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta({namespace: ns})}),
    core({
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: meta(),
      rules: [
        {apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create']},
        {apiGroups: [''], resources: ['pods', 'nodes', 'namespaces', 'services'], verbs: READ},
        {apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: READ},
      ],
    }),
    core({
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: meta(),
      roleRef: {apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: CONTROLLER_NAME}, subjects: subject,
    }),
    core({
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: meta({namespace: ns}),
      rules: [
        {apiGroups: [CRD_GROUP], resources: ['*'], verbs: WRITE},
        {apiGroups: [''], resources: ['secrets', 'configmaps'], verbs: WRITE},
        {apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: WRITE},
        {apiGroups: ['', 'events.k8s.io'], resources: ['events'], verbs: ['create', 'patch']},
      ],
    }),
    core({
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: meta({namespace: ns}),
      roleRef: {apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: CONTROLLER_NAME}, subjects: subject,
    }),
    own({
      apiVersion: 'v1', kind: 'Service', metadata: meta({namespace: ns}),
      spec: {
        ports: [
          {name: 'https-control', port: CONTROL_PORT, protocol: 'TCP', targetPort: 'https-control'},
          {name: 'http-health', port: HEALTH_PORT, protocol: 'TCP', targetPort: 'http-health'},
        ],
        selector: {'app.kubernetes.io/name': CONTROLLER_NAME},
        type: 'ClusterIP',
      },
    }),
    own(controllerDeployment(values)),
  ]
}

function controllerDeployment(values: InstallValues): KubeObject {
  const ns = values.namespace
  const selector = {'app.kubernetes.io/name': CONTROLLER_NAME}
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {labels: installLabels('controller'), name: CONTROLLER_NAME, namespace: ns},
    spec: {
      replicas: values.controller.replicas,
      selector: {matchLabels: selector},
      // A new controller is Ready before an old one stops: the Service always has a replica behind it.
      strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}, type: 'RollingUpdate'},
      template: {
        metadata: {labels: podLabels('controller', CONTROLLER_NAME)},
        spec: {
          containers: [{
            args: [
              'controller', 'run', '--store', 'kubernetes', '--listen', `0.0.0.0:${CONTROL_PORT}`, '--health', `0.0.0.0:${HEALTH_PORT}`,
              '--advertise', `https://${CONTROLLER_NAME}.${ns}.svc:${CONTROL_PORT}`, '--trust-domain', values.trustDomain,
              ...(values.hostPod.enabled ? ['--host-identity-secret', RUNTIME_OBJECTS.hostIdentitySecret] : []),
              ...(values.hub.enabled ? ['--hub-identity-secret', RUNTIME_OBJECTS.hubIdentitySecret] : []),
            ],
            env: [fieldRef('POD_NAMESPACE', 'metadata.namespace'), fieldRef('POD_NAME', 'metadata.name'), ...commonEnv(values)],
            image: imageOf(values, values.controller.image),
            imagePullPolicy: values.image.pullPolicy,
            livenessProbe: {failureThreshold: 3, httpGet: {path: '/healthz', port: 'http-health'}, initialDelaySeconds: 10, periodSeconds: 10},
            name: 'controller',
            ports: [
              {containerPort: CONTROL_PORT, name: 'https-control', protocol: 'TCP'},
              {containerPort: HEALTH_PORT, name: 'http-health', protocol: 'TCP'},
            ],
            readinessProbe: {failureThreshold: 3, httpGet: {path: '/ready', port: 'http-health'}, periodSeconds: 2},
            resources: resourcesOf(values.controller.resources),
            securityContext: restrictedContainer(),
            volumeMounts: [{mountPath: '/tmp', name: 'tmp'}, {mountPath: ZTCTL_HOME, name: 'home'}],
          }],
          ...pullSecrets(values),
          ...nodeSelector(values.controller.nodeSelector),
          securityContext: restrictedPod(),
          serviceAccountName: CONTROLLER_NAME,
          volumes: [{emptyDir: {}, name: 'tmp'}, {emptyDir: {}, name: 'home'}],
        },
      },
    },
  }
}

/** Where ztctl in a container keeps the little it writes (an emptyDir: the state is in the API server). */
export const ZTCTL_HOME = '/var/lib/ztctl'

export function commonEnv(values: InstallValues): {name: string; value: string}[] {
  // HOME and SHELL: the containers run as a uid without a passwd entry, where os.homedir() and oclif's
  // os.userInfo() (for the shell) would fail.
  return [{name: 'HOME', value: ZTCTL_HOME}, {name: 'SHELL', value: '/bin/sh'}, {name: 'ZTCTL_HOME', value: ZTCTL_HOME}, {name: 'ZTCTL_LOG_LEVEL', value: values.logLevel}, {name: 'NO_COLOR', value: '1'}]
}

export const restrictedPod = () => ({fsGroup: 65_532, runAsGroup: 65_532, runAsNonRoot: true, runAsUser: 65_532, seccompProfile: {type: 'RuntimeDefault'}})
export const restrictedContainer = () => ({allowPrivilegeEscalation: false, capabilities: {drop: ['ALL']}, readOnlyRootFilesystem: true})

export function pullSecrets(values: InstallValues): {imagePullSecrets?: {name: string}[]} {
  return values.image.pullSecrets.length > 0 ? {imagePullSecrets: values.image.pullSecrets.map((name) => ({name}))} : {}
}

export function nodeSelector(selector: Record<string, string>): {nodeSelector?: Record<string, string>} {
  return Object.keys(selector).length > 0 ? {nodeSelector: selector} : {}
}

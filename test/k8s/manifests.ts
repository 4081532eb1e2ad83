// The objects the controller-in-the-cluster tests run, as K8S-CONTRACT.md fixes them (names, ports, args,
// env, volumes, RBAC): the controller (ServiceAccount, Role + ClusterRole, Service, Deployment) and the
// node agent (ServiceAccount, DaemonSet). `ztctl install` renders the real ones; these are the minimum
// the contract asks for, so these tests do not depend on the installer.
import type {Cluster} from '../helpers/k8s.js'

type KubeObject = Record<string, unknown> & {kind: string; metadata: {labels?: Record<string, string>; name: string; namespace?: string}}

const labels = (component: string) => ({'app.kubernetes.io/component': component, 'app.kubernetes.io/managed-by': 'ztctl', 'app.kubernetes.io/part-of': 'ztctl', 'ztctl.io/install': 'default'})
const env = (name: string, fieldPath: string) => ({name, valueFrom: {fieldRef: {fieldPath}}})
const READ = ['get', 'list', 'watch']
const WRITE = [...READ, 'create', 'update', 'patch', 'delete']
const restricted = {allowPrivilegeEscalation: false, capabilities: {drop: ['ALL']}, readOnlyRootFilesystem: true}
const nonRoot = {fsGroup: 65_532, runAsGroup: 65_532, runAsNonRoot: true, runAsUser: 65_532}
const scratch = {mounts: [{mountPath: '/tmp', name: 'tmp'}, {mountPath: '/var/lib/ztctl', name: 'home'}], volumes: [{emptyDir: {}, name: 'tmp'}, {emptyDir: {}, name: 'home'}]}
// uid 65532 has no passwd entry in the image: without HOME and SHELL, os.userInfo() (oclif) throws.
const commonEnv = [
  {name: 'ZTCTL_HOME', value: '/var/lib/ztctl'}, {name: 'HOME', value: '/var/lib/ztctl'}, {name: 'SHELL', value: '/bin/sh'}, {name: 'NO_COLOR', value: '1'},
]

export function controllerObjects(namespace: string, image: string, replicas = 1, extraArgs: string[] = []): KubeObject[] {
  const name = 'ztctl-controller'
  const meta = (extra: Record<string, unknown> = {}) => ({labels: labels('controller'), name, ...extra})
  const subjects = [{kind: 'ServiceAccount', name, namespace}]
  const selector = {'app.kubernetes.io/name': name}
  return [
    {apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta({namespace})},
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: meta({namespace}),
      rules: [
        {apiGroups: ['ztctl.io'], resources: ['*'], verbs: WRITE},
        {apiGroups: [''], resources: ['secrets', 'configmaps'], verbs: WRITE},
        {apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: WRITE},
        {apiGroups: ['', 'events.k8s.io'], resources: ['events'], verbs: ['create', 'patch']},
      ],
    },
    {apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: meta({namespace}), roleRef: {apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name}, subjects},
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: meta({name: `${name}-${namespace}`}),
      rules: [
        {apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create']},
        {apiGroups: [''], resources: ['pods', 'nodes', 'namespaces', 'services'], verbs: READ},
        {apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: READ},
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: meta({name: `${name}-${namespace}`}),
      roleRef: {apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${name}-${namespace}`}, subjects,
    },
    {
      apiVersion: 'v1', kind: 'Service', metadata: meta({namespace}),
      spec: {
        ports: [{name: 'https-control', port: 15_012, targetPort: 'https-control'}, {name: 'http-health', port: 15_014, targetPort: 'http-health'}],
        selector,
      },
    },
    {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: meta({namespace}),
      spec: {
        replicas,
        selector: {matchLabels: selector},
        template: {
          metadata: {labels: {...selector, ...labels('controller')}},
          spec: {
            containers: [{
              args: ['controller', 'run', '--store', 'kubernetes', '--listen', '0.0.0.0:15012', '--health', '0.0.0.0:15014',
                '--advertise', `https://${name}.${namespace}.svc:15012`, ...extraArgs],
              env: [env('POD_NAMESPACE', 'metadata.namespace'), env('POD_NAME', 'metadata.name'), ...commonEnv],
              image, imagePullPolicy: 'IfNotPresent',
              livenessProbe: {httpGet: {path: '/healthz', port: 'http-health'}, initialDelaySeconds: 10, periodSeconds: 10},
              name: 'controller',
              ports: [{containerPort: 15_012, name: 'https-control'}, {containerPort: 15_014, name: 'http-health'}],
              readinessProbe: {httpGet: {path: '/ready', port: 'http-health'}, periodSeconds: 1},
              securityContext: restricted,
              volumeMounts: scratch.mounts,
            }],
            securityContext: nonRoot,
            serviceAccountName: name,
            terminationGracePeriodSeconds: 10,
            volumes: scratch.volumes,
          },
        },
      },
    },
  ]
}

export function nodeAgentObjects(namespace: string, image: string): KubeObject[] {
  const name = 'ztctl-node'
  const selector = {'app.kubernetes.io/name': name}
  return [
    {apiVersion: 'v1', automountServiceAccountToken: false, kind: 'ServiceAccount', metadata: {labels: labels('node-agent'), name, namespace}},
    {
      apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: {labels: labels('node-agent'), name, namespace},
      spec: {
        selector: {matchLabels: selector},
        template: {
          metadata: {labels: {...selector, ...labels('node-agent')}},
          spec: {
            automountServiceAccountToken: false,
            containers: [{
              args: ['agent', 'run', '--kubernetes', '--controller', 'https://$(ZTCTL_CONTROLLER_SERVICE_HOST):$(ZTCTL_CONTROLLER_SERVICE_PORT)',
                '--hbone', '0.0.0.0:15008', '--admin', '127.0.0.1:15000', '--metrics', '0.0.0.0:15020', '--readiness', '0.0.0.0:15021'],
              env: [env('NODE_NAME', 'spec.nodeName'), env('POD_NAME', 'metadata.name'), env('POD_NAMESPACE', 'metadata.namespace'), env('POD_IP', 'status.podIP'), ...commonEnv],
              image, imagePullPolicy: 'IfNotPresent',
              name: 'agent',
              ports: [{containerPort: 15_008, name: 'hbone'}, {containerPort: 15_020, name: 'http-metrics'}, {containerPort: 15_021, name: 'http-readiness'}],
              readinessProbe: {httpGet: {path: '/healthz/ready', port: 15_021}, periodSeconds: 1},
              securityContext: restricted,
              volumeMounts: [
                {mountPath: '/var/run/secrets/ztctl', name: 'ztctl-token', readOnly: true},
                {mountPath: '/var/run/ztctl/ca', name: 'ca-root', readOnly: true},
                ...scratch.mounts,
              ],
            }],
            securityContext: nonRoot,
            serviceAccountName: name,
            terminationGracePeriodSeconds: 5,
            tolerations: [{operator: 'Exists'}],
            volumes: [
              {name: 'ztctl-token', projected: {sources: [{serviceAccountToken: {audience: 'ztctl', expirationSeconds: 3600, path: 'token'}}]}},
              {configMap: {name: 'ztctl-ca-root', optional: true}, name: 'ca-root'},
              ...scratch.volumes,
            ],
          },
        },
      },
    },
  ]
}

/** Create every object (they are new: the namespace is the test's own). */
export async function createObjects(cluster: Cluster, objects: KubeObject[]): Promise<void> {
  for (const object of objects) await cluster.objects.create(object as never)
}

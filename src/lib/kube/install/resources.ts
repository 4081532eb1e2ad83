// Where each kind install renders lives in the REST API (a fixed table: install only ever makes these kinds,
// so it needs no discovery round trips).
import type {KubeObject} from '../manifest/objects.js'

interface KindInfo {
  apiVersion: string
  namespaced: boolean
  plural: string
}

export const KINDS: Record<string, KindInfo> = {
  ClusterRole: {apiVersion: 'rbac.authorization.k8s.io/v1', namespaced: false, plural: 'clusterroles'},
  ClusterRoleBinding: {apiVersion: 'rbac.authorization.k8s.io/v1', namespaced: false, plural: 'clusterrolebindings'},
  ConfigMap: {apiVersion: 'v1', namespaced: true, plural: 'configmaps'},
  CustomResourceDefinition: {apiVersion: 'apiextensions.k8s.io/v1', namespaced: false, plural: 'customresourcedefinitions'},
  DaemonSet: {apiVersion: 'apps/v1', namespaced: true, plural: 'daemonsets'},
  Endpoints: {apiVersion: 'v1', namespaced: true, plural: 'endpoints'},
  Deployment: {apiVersion: 'apps/v1', namespaced: true, plural: 'deployments'},
  Lease: {apiVersion: 'coordination.k8s.io/v1', namespaced: true, plural: 'leases'},
  Namespace: {apiVersion: 'v1', namespaced: false, plural: 'namespaces'},
  Role: {apiVersion: 'rbac.authorization.k8s.io/v1', namespaced: true, plural: 'roles'},
  RoleBinding: {apiVersion: 'rbac.authorization.k8s.io/v1', namespaced: true, plural: 'rolebindings'},
  Secret: {apiVersion: 'v1', namespaced: true, plural: 'secrets'},
  Service: {apiVersion: 'v1', namespaced: true, plural: 'services'},
  ServiceAccount: {apiVersion: 'v1', namespaced: true, plural: 'serviceaccounts'},
}

function kindInfo(kind: string): KindInfo {
  const info = KINDS[kind]
  if (!info) throw new Error(`install renders no ${kind}: add it to KINDS`)
  return info
}

const groupPath = (apiVersion: string) => (apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`)

/** The collection of a kind: in one namespace, or across all of them (namespace undefined). */
export function collectionPath(kind: string, namespace?: string): string {
  const info = kindInfo(kind)
  const scope = info.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : ''
  return `${groupPath(info.apiVersion)}${scope}/${info.plural}`
}

export function objectPath(object: Pick<KubeObject, 'kind' | 'metadata'>): string {
  return `${collectionPath(object.kind, object.metadata.namespace)}/${encodeURIComponent(object.metadata.name)}`
}

/** kind/namespace/name: the identity of an object across renderings. */
export const objectKey = (object: Pick<KubeObject, 'kind' | 'metadata'>): string =>
  `${object.kind}/${object.metadata.namespace ?? ''}/${object.metadata.name}`

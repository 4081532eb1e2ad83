// What every rendered object shares: the labels that mark it as made by install (K8S-CONTRACT.md), the
// typed view of the values the renderers read, and the order objects are applied in. The label keys are
// the controller's too (kube/objects.ts): its run-time objects carry the same ones.
import {DEFAULT_INSTALL, LABEL} from '../objects.js'

export const INSTALL_NAME = DEFAULT_INSTALL
export const INSTALL_LABEL = LABEL.install
export const COMPONENT_LABEL = LABEL.component
export const MANAGED_BY_LABEL = LABEL.managedBy
export const PART_OF_LABEL = LABEL.partOf
export const NAME_LABEL = 'app.kubernetes.io/name'
/**
 * Marks what `install` rendered. The controller's run-time objects (CA, identities, Lease, status) carry the
 * same part-of/managed-by/install labels (so a purge finds them) but not this one, and uninstall keeps them.
 */
export const ORIGIN_LABEL = 'ztctl.io/origin'
/** Selects exactly the objects an install made. */
export const INSTALLED_SELECTOR = `${INSTALL_LABEL}=${INSTALL_NAME},${ORIGIN_LABEL}=install`
/** Everything of the installation: install's objects and the controller's run-time ones. */
export const INSTALLATION_SELECTOR = `${INSTALL_LABEL}=${INSTALL_NAME},${MANAGED_BY_LABEL}=ztctl`
/** The ConfigMap that records what was installed: profile, values, ztctl version. */
export const INSTALL_STATE_NAME = 'ztctl-install'

export type Component = 'cni' | 'controller' | 'core' | 'demo' | 'host-pod' | 'hub' | 'node-agent'

export interface KubeObject {
  [field: string]: unknown
  apiVersion: string
  kind: string
  metadata: {annotations?: Record<string, string>; labels?: Record<string, string>; name: string; namespace?: string; [field: string]: unknown}
}

/** A rendered object and the install step (component) it belongs to. */
export interface Rendered {
  component: Component
  object: KubeObject
}

/** The values as the renderers read them (checked by values.ts before this). */
export interface InstallValues {
  cni: {
    binDir: string; confDir: string; enabled: boolean; excludedNamespaces: string[]; image: string; netnsDir: string; nodeSelector: Record<string, string>
    readinessPort: number; resources: Resources; runDir: string
  }
  controller: {image: string; nodeSelector: Record<string, string>; replicas: number; resources: Resources}
  demo: {enabled: boolean; image: string; namespace: string; pullPolicy: string}
  hostPod: {enabled: boolean; image: string; nodeSelector: Record<string, string>; resources: Resources}
  hub: {enabled: boolean; image: string; nodeSelector: Record<string, string>; resources: Resources}
  image: {pullPolicy: string; pullSecrets: string[]; repository: string; tag: string}
  logLevel: string
  namespace: string
  nodeAgent: {enabled: boolean; image: string; nodeSelector: Record<string, string>; resources: Resources}
  trustDomain: string
}

export interface Resources {
  limits: {cpu?: string; memory?: string}
  requests: {cpu?: string; memory?: string}
}

/** The labels of an object install makes. */
export function installLabels(component: Component, extra: Record<string, string> = {}): Record<string, string> {
  return {
    [COMPONENT_LABEL]: component,
    [MANAGED_BY_LABEL]: 'ztctl',
    [PART_OF_LABEL]: 'ztctl',
    [INSTALL_LABEL]: INSTALL_NAME,
    [ORIGIN_LABEL]: 'install',
    ...extra,
  }
}

/** Pods are made by their controllers, not by install: they carry the component labels, not the install ones. */
export function podLabels(component: Component, name: string): Record<string, string> {
  return {[COMPONENT_LABEL]: component, [NAME_LABEL]: name, [PART_OF_LABEL]: 'ztctl'}
}

export function imageOf(values: InstallValues, override: string): string {
  return override || `${values.image.repository}:${values.image.tag}`
}

/** Resource requests/limits without the empty entries. */
export function resourcesOf(resources: Resources): Record<string, Record<string, string>> {
  const pick = (entries: Record<string, string | undefined>): Record<string, string> =>
    Object.fromEntries(Object.entries(entries).filter((entry): entry is [string, string] => Boolean(entry[1])))
  const out: Record<string, Record<string, string>> = {}
  const limits = pick(resources.limits)
  const requests = pick(resources.requests)
  if (Object.keys(limits).length > 0) out.limits = limits
  if (Object.keys(requests).length > 0) out.requests = requests
  return out
}

export const fieldRef = (name: string, fieldPath: string) => ({name, valueFrom: {fieldRef: {apiVersion: 'v1', fieldPath}}})

/** Kinds in the order install applies them (and uninstall deletes them, backwards). */
export const APPLY_ORDER = [
  'CustomResourceDefinition', 'Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding',
  'Secret', 'ConfigMap', 'Service', 'Deployment', 'DaemonSet',
] as const

// The hub before the agents: its Service exists when their pods start (they find it in their environment).
export const COMPONENT_ORDER: readonly Component[] = ['core', 'controller', 'hub', 'cni', 'node-agent', 'host-pod', 'demo']

/** Sort rendered objects: by component, then kind order, then namespace and name. Stable, so YAML is deterministic. */
export function sortRendered(items: Rendered[]): Rendered[] {
  const kindRank = (kind: string) => {
    const rank = (APPLY_ORDER as readonly string[]).indexOf(kind)
    return rank === -1 ? APPLY_ORDER.length : rank
  }

  return [...items].sort((a, b) =>
    COMPONENT_ORDER.indexOf(a.component) - COMPONENT_ORDER.indexOf(b.component)
    || kindRank(a.object.kind) - kindRank(b.object.kind)
    || (a.object.metadata.namespace ?? '').localeCompare(b.object.metadata.namespace ?? '')
    || a.object.metadata.name.localeCompare(b.object.metadata.name))
}

export function objectRef(object: Pick<KubeObject, 'kind' | 'metadata'>): string {
  return object.metadata.namespace ? `${object.kind} ${object.metadata.namespace}/${object.metadata.name}` : `${object.kind} ${object.metadata.name}`
}

// Which pods are in the ambient mesh (issue 12 §1): a pod is enrolled when its namespace carries
// `ztctl.io/dataplane-mode=ambient`, the namespace is not one that is never enrolled, the pod does not
// opt out with the annotation `ztctl.io/redirection: disabled`, and it has a network namespace of its own
// (hostNetwork pods share the node's: redirecting them would capture the node). One decision for the
// controller (which publishes workloads) and the node agent (which redirects pods): both import this.
// (Owned by k8s2a; written here first by k8s2b with the agreed signature, K8S-CONTRACT.md "Kubernetes II".)
import type {V1Namespace, V1Pod} from '@kubernetes/client-node'

export const DATAPLANE_MODE_LABEL = 'ztctl.io/dataplane-mode'
export const DATAPLANE_MODE_AMBIENT = 'ambient'
export const REDIRECTION_ANNOTATION = 'ztctl.io/redirection'
export const REDIRECTION_DISABLED = 'disabled'
/** Namespaces whose pods are never enrolled, whatever their labels say (configurable: EnrollmentOptions). */
export const NEVER_ENROLLED_NAMESPACES: readonly string[] = ['kube-system', 'kube-public', 'kube-node-lease', 'ztctl-system']

export interface EnrollmentOptions {
  /** replaces NEVER_ENROLLED_NAMESPACES (the install namespace is always added) */
  excludedNamespaces?: readonly string[]
  /** the install namespace, never enrolled */
  installNamespace?: string
}

export type EnrollDecision =
  | {enrolled: true}
  | {enrolled: false; reason: 'excluded-namespace' | 'finished' | 'host-network' | 'namespace-not-labelled' | 'opted-out'}

/** Is NAMESPACE labelled into the mesh (and not one that never is)? */
export function namespaceEnrolled(namespace: Pick<V1Namespace, 'metadata'> | undefined, options: EnrollmentOptions = {}): boolean {
  const name = namespace?.metadata?.name
  if (!name || isExcluded(name, options)) return false
  return namespace.metadata?.labels?.[DATAPLANE_MODE_LABEL] === DATAPLANE_MODE_AMBIENT
}

/** The decision for POD in NAMESPACE (the namespace object as the cache holds it; undefined: not known yet). */
export function enrollDecision(namespace: Pick<V1Namespace, 'metadata'> | undefined, pod: Pick<V1Pod, 'metadata' | 'spec' | 'status'>, options: EnrollmentOptions = {}): EnrollDecision {
  const name = pod.metadata?.namespace ?? ''
  if (isExcluded(name, options)) return {enrolled: false, reason: 'excluded-namespace'}
  if (!namespaceEnrolled(namespace, options)) return {enrolled: false, reason: 'namespace-not-labelled'}
  if (pod.metadata?.annotations?.[REDIRECTION_ANNOTATION] === REDIRECTION_DISABLED) return {enrolled: false, reason: 'opted-out'}
  if (pod.spec?.hostNetwork) return {enrolled: false, reason: 'host-network'}
  const phase = pod.status?.phase
  if (phase === 'Succeeded' || phase === 'Failed') return {enrolled: false, reason: 'finished'}
  return {enrolled: true}
}

function isExcluded(namespace: string, options: EnrollmentOptions): boolean {
  if (options.installNamespace === namespace) return true
  return (options.excludedNamespaces ?? NEVER_ENROLLED_NAMESPACES).includes(namespace)
}

// Which pods the ambient mesh carries (issue 12 §1): a pure decision over a pod and its namespace, shared by
// the controller (workloads from its informers) and the node side (the CNI agent redirecting a pod at start
// and reconciling later). A namespace joins with the label `ztctl.io/dataplane-mode=ambient`; a pod opts out
// with the annotation `ztctl.io/redirection: disabled`; some namespaces never join (the mesh's own and
// kube-system, configurable); a hostNetwork pod never does (it has no network namespace of its own).

export const DATAPLANE_MODE_LABEL = 'ztctl.io/dataplane-mode'
export const AMBIENT_MODE = 'ambient'
export const REDIRECTION_ANNOTATION = 'ztctl.io/redirection'
export const REDIRECTION_DISABLED = 'disabled'
export const DEFAULT_EXCLUDED_NAMESPACES: readonly string[] = ['kube-system', 'ztctl-system']

/** The fields of a pod the decision reads (a client-node V1Pod fits). */
export interface EnrollmentPod {
  metadata?: {annotations?: Record<string, string>; name?: string; namespace?: string}
  spec?: {hostNetwork?: boolean; serviceAccountName?: string}
  status?: {phase?: string}
}

/** The fields of a namespace the decision reads (a client-node V1Namespace fits). */
export interface EnrollmentNamespace {
  metadata?: {labels?: Record<string, string>; name?: string}
}

export interface EnrollmentOptions {
  /** namespaces never enrolled, whatever their labels; default DEFAULT_EXCLUDED_NAMESPACES */
  excludedNamespaces?: readonly string[]
}

export type EnrollmentReason =
  | 'enrolled'
  | 'excluded-namespace'
  | 'finished'
  | 'host-network'
  | 'namespace-not-ambient'
  | 'namespace-unknown'
  | 'opted-out'

export interface EnrollmentDecision {
  enrolled: boolean
  reason: EnrollmentReason
  /** the reason in words, for logs and `proxy-config` */
  detail: string
}

const decision = (reason: EnrollmentReason, detail: string): EnrollmentDecision => ({detail, enrolled: reason === 'enrolled', reason})

/**
 * Whether POD (in NAMESPACE, the pod's own namespace object; undefined when it is not known yet) is carried
 * by the mesh. Checked in this order: hostNetwork, excluded namespace, finished pod, opt-out, namespace label.
 */
export function enrollmentOf(pod: EnrollmentPod, namespace: EnrollmentNamespace | undefined, options: EnrollmentOptions = {}): EnrollmentDecision {
  const ns = pod.metadata?.namespace ?? namespace?.metadata?.name ?? ''
  if (pod.spec?.hostNetwork === true) return decision('host-network', 'hostNetwork pods share the node\'s network and are never redirected')
  if ((options.excludedNamespaces ?? DEFAULT_EXCLUDED_NAMESPACES).includes(ns)) return decision('excluded-namespace', `namespace ${ns} is never enrolled`)
  const phase = pod.status?.phase
  if (phase === 'Succeeded' || phase === 'Failed') return decision('finished', `the pod has ${phase.toLowerCase()}`)
  if (pod.metadata?.annotations?.[REDIRECTION_ANNOTATION] === REDIRECTION_DISABLED) {
    return decision('opted-out', `the pod's annotation ${REDIRECTION_ANNOTATION}: ${REDIRECTION_DISABLED} keeps it out`)
  }

  if (!namespace) return decision('namespace-unknown', `namespace ${ns} is not known (yet)`)
  const mode = namespace.metadata?.labels?.[DATAPLANE_MODE_LABEL]
  if (mode !== AMBIENT_MODE) {
    return decision('namespace-not-ambient', mode === undefined ? `namespace ${ns} has no label ${DATAPLANE_MODE_LABEL}=${AMBIENT_MODE}` : `namespace ${ns} has ${DATAPLANE_MODE_LABEL}=${mode}, not ${AMBIENT_MODE}`)
  }

  return decision('enrolled', `namespace ${ns} is labelled ${DATAPLANE_MODE_LABEL}=${AMBIENT_MODE}`)
}

/** The service account a pod runs as (Kubernetes' default when the spec names none). */
export function serviceAccountOf(pod: EnrollmentPod): string {
  return pod.spec?.serviceAccountName || 'default'
}

/** The SPIFFE ID of an enrolled pod's workload: spiffe://TD/ns/NS/sa/SA. */
export function workloadSpiffeOf(trustDomain: string, pod: EnrollmentPod): string {
  return `spiffe://${trustDomain}/ns/${pod.metadata?.namespace ?? ''}/sa/${serviceAccountOf(pod)}`
}

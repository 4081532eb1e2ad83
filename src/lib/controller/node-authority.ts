// What a node identity may serve. A node agent asks the controller for workload certificates
// (spiffe://TD/ns/NS/sa/SA) and publishes workloads with their IPs; without a bound, any node could
// satisfy every ns:/sa: policy. Two bindings, one check:
// - without Kubernetes, the scope its creator gave it (`identity create node-1 -a node --serves 'prod/*'
//   --pod-cidr 10.1.0.0/24`): namespace/service-account patterns and the CIDRs its pods' IPs lie in;
// - on Kubernetes, the node it is bound to (scope.node): a NodeAuthority that knows the pods on that node
//   plugs in here (ControllerOptions.kubernetesNodes) and decides.
import {ExitCode, ZtError} from '../errors.js'
import {cidrContains, isValidCidr} from '../proxy/address.js'
import type {IdentityRecord, IdentityScope} from './store/store.js'

/** What a node claims to serve: a service account (certificate), or a workload with its addresses. */
export interface WorkloadClaim {
  /** the addresses a published workload claims; absent for a certificate */
  ips?: readonly string[]
  /** the pod's name and uid, for an authority that can look pods up */
  name?: string
  namespace: string
  serviceAccount: string
  uid?: string
}

export interface NodeAuthority {
  /** Resolves when NODE may serve CLAIM; throws ZT_ERR_FORBIDDEN saying what lies outside its scope. */
  authorize(node: IdentityRecord, claim: WorkloadClaim): Promise<void>
}

const K8S_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/
const MAX_SCOPE_ENTRIES = 64
const RECREATE = "a node's scope is fixed when it is created: delete it and create it again with the scope it needs (`ztctl identity create NAME -a node --serves NS/SA --pod-cidr CIDR`)"

const forbidden = (node: IdentityRecord, why: string, suggestion = RECREATE): ZtError =>
  new ZtError('ZT_ERR_FORBIDDEN', `node identity "${node.name}" ${why}`, {exit: ExitCode.auth, suggestion})

/** `NS/SA` where either part may be `*`. */
function patternMatches(pattern: string, claim: WorkloadClaim): boolean {
  const [namespace, serviceAccount] = pattern.split('/')
  return (namespace === '*' || namespace === claim.namespace) && (serviceAccount === '*' || serviceAccount === claim.serviceAccount)
}

/** The authority for scoped node identities; KUBERNETES decides for identities bound to a Kubernetes node. */
export function scopedNodeAuthority(kubernetes?: NodeAuthority): NodeAuthority {
  return {
    async authorize(node, claim) {
      const scope = node.scope ?? {}
      if (scope.node !== undefined) {
        if (!kubernetes) {
          throw forbidden(node, `is bound to the Kubernetes node "${scope.node}", and this controller does not watch Kubernetes pods`, 'run the controller in the cluster, or create a scoped node identity for this host')
        }

        return kubernetes.authorize(node, claim)
      }

      const serves = scope.serves ?? []
      if (serves.length === 0) throw forbidden(node, 'has no scope, so it may serve no workload')
      const subject = `${claim.namespace}/${claim.serviceAccount}`
      if (!serves.some((pattern) => patternMatches(pattern, claim))) throw forbidden(node, `may serve ${serves.join(', ')}, not ${subject}`)
      const podCidrs = scope.podCidrs ?? []
      const outside = (claim.ips ?? []).filter((ip) => !podCidrs.some((cidr) => cidrContains(cidr, ip)))
      if (outside.length > 0) {
        throw forbidden(node, `may publish addresses in ${podCidrs.join(', ') || 'no pod CIDR'}, not ${outside.join(', ')} (workload ${subject})`)
      }
    },
  }
}

const badScope = (message: string): ZtError =>
  new ZtError('ZT_ERR_BAD_SCOPE', message, {exit: ExitCode.usage, suggestion: "e.g. --serves 'prod/*' --serves shop/web --pod-cidr 10.1.0.0/24 (for an identity with -a node)"})

/** Check a scope given at creation (the CLI before sending, the controller again): well formed, node identities only. */
export function checkNodeScope(scope: {podCidrs?: unknown; serves?: unknown}, roles: readonly string[]): IdentityScope | undefined {
  const list = (value: unknown, what: string): string[] => {
    if (value === undefined) return []
    if (!Array.isArray(value) || value.length > MAX_SCOPE_ENTRIES || value.some((item) => typeof item !== 'string')) {
      throw badScope(`"${what}" must be a list of at most ${MAX_SCOPE_ENTRIES} strings`)
    }

    return value as string[]
  }

  const serves = list(scope.serves, 'serves')
  const podCidrs = list(scope.podCidrs, 'podCidrs')
  if (serves.length === 0 && podCidrs.length === 0) return undefined
  if (!roles.includes('node')) throw badScope('a scope (--serves, --pod-cidr) is for node identities only: add -a node')
  for (const pattern of serves) {
    const parts = pattern.split('/')
    if (parts.length !== 2 || !parts.every((part) => part === '*' || K8S_NAME.test(part))) {
      throw badScope(`--serves "${pattern}" is not NAMESPACE/SERVICE_ACCOUNT (either part may be *)`)
    }
  }

  for (const cidr of podCidrs) if (!cidr.includes('/') || !isValidCidr(cidr)) throw badScope(`--pod-cidr "${cidr}" is not a CIDR (ADDRESS/BITS)`)
  return {podCidrs, serves}
}

// Node agents enroll with their projected ServiceAccount token, as ztunnel does with istiod: the
// controller asks the API server who the token belongs to (TokenReview, audience ztctl), reads the pod
// the token is bound to (its name and uid are in the review's extra fields) to learn its node, checks it
// runs as the node agents' ServiceAccount and on the node the agent says it is on, and issues the
// identity `node-<node>` (role node, scope {node}) — the same on every renewal.
import {randomUUID} from 'node:crypto'

import type {V1Pod, V1TokenReviewStatus, V1UserInfo} from '@kubernetes/client-node'

import {ExitCode, ZtError} from '../errors.js'
import {type KubeClients, isNotFound, kubeError} from '../kube/client.js'
import {TOKEN_AUDIENCE} from '../kube/objects.js'
import {type IssuedCert, issueIdentityCert, renewIdentityCert} from './issue.js'
import {checkIdentityName} from './routes/identities.js'
import {type ControllerServices, identitySpiffe, type NodeAgentAuthority, type NodeAgentReview} from './routes/types.js'
import {NODE_ROLE} from './routes/workloads.js'
import type {IdentityRecord} from './store/store.js'

const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name'
const POD_UID_EXTRA = 'authentication.kubernetes.io/pod-uid'
/** Reviews in flight at once: an unauthenticated caller cannot make us flood the API server. */
const MAX_CONCURRENT_REVIEWS = 16
const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]+$/
const MAX_TOKEN_LENGTH = 16 * 1024
/** A node's first enrollment (create, sign, complete) that takes longer than this stopped half-way. */
const FIRST_ENROLLMENT_MS = 30_000

const refused = (code: string, message: string, suggestion: string): ZtError => new ZtError(code, message, {exit: ExitCode.auth, suggestion})

export function kubeNodeAgentAuthority(clients: Pick<KubeClients, 'authn' | 'core'>, namespace: string, serviceAccount: string): NodeAgentAuthority {
  let inFlight = 0
  const account = {namespace, serviceAccount}
  return {
    async review(token, claimedNode) {
      const text = token.trim()
      if (text.length > MAX_TOKEN_LENGTH || !JWT_SHAPE.test(text)) {
        throw refused('ZT_ERR_KUBE_TOKEN_REJECTED', 'the ServiceAccount token is not a JWT', `present the projected token file (audience ${TOKEN_AUDIENCE}) as it is`)
      }

      if (inFlight >= MAX_CONCURRENT_REVIEWS) {
        throw new ZtError('ZT_ERR_BUSY', 'too many node-agent enrollments at once', {exit: ExitCode.unreachable, suggestion: 'retry in a second (agents back off by themselves)'})
      }

      inFlight++
      try {
        return await reviewNodeAgent(clients, account, text, claimedNode)
      } finally {
        inFlight--
      }
    },
  }
}

/** The node agents' ServiceAccount. */
interface NodeAgentAccount {
  namespace: string
  serviceAccount: string
}

/** The pod a ServiceAccount token is bound to (from the review's extra fields). */
interface BoundPod {
  podName: string
  podUid: string
}

/** TOKEN's review: it is ACCOUNT's, bound to a pod that still runs as ACCOUNT, on CLAIMEDNODE when given. */
async function reviewNodeAgent(clients: Pick<KubeClients, 'authn' | 'core'>, account: NodeAgentAccount, token: string, claimedNode?: string): Promise<NodeAgentReview> {
  const bound = boundPod(await tokenUser(clients, token), account)
  const pod = await readBoundPod(clients, account.namespace, bound)
  const node = podNode(pod, account, bound.podName, claimedNode)
  return {namespace: account.namespace, node, pod: bound.podName, podUid: bound.podUid, serviceAccount: account.serviceAccount}
}

/** Who the API server says TOKEN belongs to (TokenReview), when it is authenticated for our audience. */
async function tokenUser(clients: Pick<KubeClients, 'authn'>, token: string): Promise<undefined | V1UserInfo> {
  let status: undefined | V1TokenReviewStatus
  try {
    status = (await clients.authn.createTokenReview({body: {spec: {audiences: [TOKEN_AUDIENCE], token}}})).status
  } catch (error) {
    throw kubeError(error, 'review the ServiceAccount token (TokenReview)')
  }

  if (!status?.authenticated) {
    throw refused('ZT_ERR_KUBE_TOKEN_REJECTED', `the API server rejected the ServiceAccount token: ${status?.error ?? 'not authenticated'}`,
      `present the projected token (audience ${TOKEN_AUDIENCE}) the node agent's pod mounts; the kubelet refreshes it before it expires`)
  }

  if (!(status.audiences ?? []).includes(TOKEN_AUDIENCE)) {
    throw refused('ZT_ERR_KUBE_TOKEN_AUDIENCE', `the ServiceAccount token is not meant for ${TOKEN_AUDIENCE} (audiences: ${(status.audiences ?? []).join(', ') || 'none'})`,
      `project a token with audience ${TOKEN_AUDIENCE} (serviceAccountToken.audience in the pod's volumes)`)
  }

  return status.user
}

/** The pod USER's token is bound to, when USER is ACCOUNT. */
function boundPod(user: undefined | V1UserInfo, {namespace, serviceAccount}: NodeAgentAccount): BoundPod {
  const expected = `system:serviceaccount:${namespace}:${serviceAccount}`
  const username = user?.username ?? ''
  if (username !== expected) {
    throw refused('ZT_ERR_KUBE_WRONG_ACCOUNT', `the token belongs to ${username || 'an unknown user'}; only ${expected} may enroll node agents`,
      `run the node agent as ServiceAccount ${serviceAccount} in namespace ${namespace} (the DaemonSet ztctl install renders)`)
  }

  const podName = user?.extra?.[POD_NAME_EXTRA]?.[0]
  const podUid = user?.extra?.[POD_UID_EXTRA]?.[0]
  if (!podName || !podUid) {
    throw refused('ZT_ERR_KUBE_TOKEN_UNBOUND', 'the ServiceAccount token is not bound to a pod, so it does not say which node it runs on',
      'use the projected token of the pod (a serviceAccountToken volume), not a Secret-based or TokenRequest token without a pod')
  }

  return {podName, podUid}
}

/** The token's pod as it is now: the very pod (same uid), not a later one of the same name. */
async function readBoundPod(clients: Pick<KubeClients, 'core'>, namespace: string, {podName, podUid}: BoundPod): Promise<V1Pod> {
  let pod: V1Pod
  try {
    pod = await clients.core.readNamespacedPod({name: podName, namespace})
  } catch (error) {
    if (isNotFound(error)) {
      throw refused('ZT_ERR_KUBE_POD_GONE', `the token's pod ${namespace}/${podName} does not exist (any more)`, 'a new pod brings a new token; restart the node agent')
    }

    throw kubeError(error, `read pod ${namespace}/${podName}`)
  }

  if (pod.metadata?.uid !== podUid) {
    throw refused('ZT_ERR_KUBE_POD_GONE', `the token was issued to an earlier pod named ${namespace}/${podName}`, 'a new pod brings a new token; restart the node agent')
  }

  return pod
}

/** The node POD runs on, when it runs as ACCOUNT and (given CLAIMEDNODE) on the node the agent says. */
function podNode(pod: V1Pod, {namespace, serviceAccount}: NodeAgentAccount, podName: string, claimedNode?: string): string {
  if (pod.spec?.serviceAccountName !== serviceAccount) {
    throw refused('ZT_ERR_KUBE_WRONG_ACCOUNT', `pod ${namespace}/${podName} runs as ServiceAccount ${pod.spec?.serviceAccountName ?? '?'}, not ${serviceAccount}`,
      `run the node agent as ServiceAccount ${serviceAccount}`)
  }

  const node = pod.spec?.nodeName
  if (!node) throw refused('ZT_ERR_KUBE_WRONG_NODE', `pod ${namespace}/${podName} is not scheduled on a node yet`, 'retry once the pod runs')
  if (claimedNode !== undefined && claimedNode !== node) {
    throw refused('ZT_ERR_KUBE_WRONG_NODE', `the token's pod ${namespace}/${podName} runs on node ${node}, not on ${claimedNode}, the node this agent says it runs on`,
      'NODE_NAME must come from the downward API (spec.nodeName) of the pod whose token is presented')
  }

  return node
}

/** The identity name of a node's agent. */
export const nodeIdentityName = (node: string): string => `node-${node}`

/** Issue the certificate of the node's identity, creating the identity on the node's first enrollment. */
export async function enrollNodeAgent(services: ControllerServices, review: NodeAgentReview, csrPem: string): Promise<{identity: IdentityRecord; issued: IssuedCert}> {
  let name: string
  try {
    name = checkIdentityName(nodeIdentityName(review.node))
  } catch {
    throw new ZtError('ZT_ERR_KUBE_NODE_NAME', `node name "${review.node}" does not make a valid identity name (node-NAME, at most 63 characters)`, {
      exit: ExitCode.usage, suggestion: 'use node names of at most 58 lower-case letters, digits, "." and "-"',
    })
  }

  const {store} = services
  for (let attempt = 0; attempt < 50; attempt++) {
    const existing = await store.getIdentity(name)
    if (!existing) {
      const tokenId = randomUUID()
      let created: IdentityRecord
      try {
        created = await store.createIdentity({
          admin: false, id: randomUUID(), name, roles: [NODE_ROLE], scope: {node: review.node}, spiffe: identitySpiffe(services.trustDomain, name),
          tokenExpiresAt: new Date(Date.now() + FIRST_ENROLLMENT_MS).toISOString(), tokenId,
        })
      } catch (error) {
        if (ZtError.is(error) && error.code === 'ZT_ERR_NAME_TAKEN') continue // another replica made it first
        throw error
      }

      const issued = await issueIdentityCert(services, created, csrPem)
      return {identity: await store.completeEnrollment(tokenId, issued.record, new Date()), issued}
    }

    if (existing.scope?.node !== review.node || !existing.roles.includes(NODE_ROLE)) {
      throw new ZtError('ZT_ERR_NAME_TAKEN', `identity "${name}" exists but is not the node agent identity of node ${review.node}`, {
        exit: ExitCode.conflict, suggestion: `it was made by hand (\`ztctl identity create\`): delete it with \`ztctl identity delete ${name}\``,
      })
    }

    if (existing.status === 'pending') {
      // Another request of this node is enrolling it right now: wait for it. One that stopped half-way
      // (its internal token expired): start over.
      if (existing.tokenExpiresAt <= new Date().toISOString()) await store.revokeIdentity(name, new Date()).catch(() => {})
      else await new Promise((resolve) => setTimeout(resolve, 100))
      continue
    }

    try {
      return {identity: existing, issued: await renewIdentityCert(services, existing, csrPem)}
    } catch (error) {
      // A revocation that landed while we signed wins: the next attempt makes a new identity.
      if (!ZtError.is(error) || error.code !== 'ZT_ERR_REVOKED') throw error
    }
  }

  throw new ZtError('ZT_ERR_CONFLICT', `identity "${name}" kept changing while node ${review.node} enrolled`, {exit: ExitCode.conflict, suggestion: 'the agent retries by itself'})
}

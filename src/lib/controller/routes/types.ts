// What every route file sees: the controller's services and a small request context.
import type {Http2ServerRequest, Http2ServerResponse} from 'node:http2'

import type {Signer} from '../../pki/pki.js'
import type {ControllerCA} from '../ca.js'
import type {ConfigHub} from '../config-hub.js'
import type {NodeAuthority} from '../node-authority.js'
import type {Logger} from '../logger.js'
import type {Principal, Store} from '../store/store.js'

export interface ControllerServices {
  /** lifetime of admin certificates; admins renew on use past half-life */
  adminCertTtlSeconds: number
  ca: ControllerCA
  certTtlSeconds: number
  hub: ConfigHub
  logger: Logger
  /** who may enroll as a node agent with a ServiceAccount token (Kubernetes only) */
  nodeAgents?: NodeAgentAuthority
  /** what node identities may serve (workload certificates, published workloads) */
  nodeAuthority: NodeAuthority
  signer: Signer
  store: Store
  trustDomain: string
  /** the URL agents and CLIs use (JWT `iss`, identity files, contexts) */
  url: string
  version: string
}

/** anonymous: no client cert needed; identity: any active identity; admin: an identity with the admin flag */
export type Access = 'admin' | 'anonymous' | 'identity'

export interface RouteContext {
  body: unknown
  params: Record<string, string>
  /** set for every access level but anonymous */
  principal?: Principal
  request: Http2ServerRequest
  response: Http2ServerResponse
  services: ControllerServices
}

export interface Route {
  access: Access
  /** handle: returns the JSON response body (status 200); throws ZtError for failures */
  handle(context: RouteContext): Promise<unknown>
  method: 'DELETE' | 'GET' | 'POST' | 'PUT'
  /** `/v1/identities/:name` */
  path: string
  /** streaming routes own the request and response; the router neither reads the body nor answers */
  streaming?: boolean
}

export const identitySpiffe = (trustDomain: string, name: string): string => `spiffe://${trustDomain}/identity/${name}`

/** The controller's own SPIFFE ID: clients pin it in the TLS handshake (no identity or workload can hold it). */
export const controllerSpiffe = (trustDomain: string): string => `spiffe://${trustDomain}/controller`

export const IDENTITY_NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/

/** A node agent as its ServiceAccount token proves it (node-enroll.ts). */
export interface NodeAgentReview {
  namespace: string
  node: string
  pod: string
  podUid: string
  serviceAccount: string
}

export interface NodeAgentAuthority {
  /** Who presents this token: a node-agent pod and its node, or a ZtError saying why not. */
  review(token: string, claimedNode?: string): Promise<NodeAgentReview>
}

// Workloads of node agents (issue 4): a node agent (an identity with role `node`) gets one certificate
// per service account it serves — `spiffe://<td>/ns/<ns>/sa/<sa>` — and publishes the pods it
// redirects as `workload` resources, which the config stream pushes to every agent. Both only within
// what the node may serve (node-authority.ts: its scope, or its Kubernetes node). Workload certificates
// are recorded as minted by the node (deleting the node revokes them) with usage 'workload': they
// authenticate pods to each other, never to this API.
import {isIP} from 'node:net'

import type {WorkloadRecord} from '../../config/types.js'
import {ExitCode, ZtError} from '../../errors.js'
import {issueWorkloadCert} from '../issue.js'
import type {IdentityRecord, Principal} from '../store/store.js'
import type {Route} from './types.js'
import {asObject, badRequest, requireString} from './validate.js'

export const NODE_ROLE = 'node'
/** Kubernetes object names (DNS subdomain): namespaces, service accounts, pod names. */
const K8S_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/
const UID = /^[\w.-]{1,253}$/
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[\w.-]+):\d{1,5}$/
const MAX_IPS = 16

export const workloadSpiffe = (trustDomain: string, namespace: string, serviceAccount: string): string =>
  `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`

function requireNode(principal: Principal | undefined): IdentityRecord {
  if (!principal?.identity.roles.includes(NODE_ROLE)) {
    throw new ZtError('ZT_ERR_FORBIDDEN', `identity "${principal?.identity.name ?? '?'}" is not a node agent (no role "${NODE_ROLE}")`, {
      exit: ExitCode.auth,
      suggestion: 'create the node agent\'s identity with `ztctl identity create NAME -a node --serves NS/SA --pod-cidr CIDR`',
    })
  }

  return principal.identity
}

function requireK8sName(object: Record<string, unknown>, field: string): string {
  const value = requireString(object, field, 253)
  if (!K8S_NAME.test(value)) throw badRequest(`"${field}" ${JSON.stringify(value)} is not a valid name`, 'use lower-case letters, digits, "." and "-"')
  return value
}

function parseWorkload(uid: string, body: unknown, node: string): WorkloadRecord {
  if (!UID.test(uid)) throw badRequest(`workload uid ${JSON.stringify(uid.slice(0, 64))} is not valid`, 'use letters, digits, ".", "_" and "-"')
  const input = asObject(body, 'the workload')
  const {ips} = input
  if (!Array.isArray(ips) || ips.length === 0 || ips.length > MAX_IPS || !ips.every((ip) => typeof ip === 'string' && isIP(ip) !== 0)) {
    throw badRequest(`"ips" must be a list of 1 to ${MAX_IPS} IP addresses`)
  }

  const hbone = requireString(input, 'hbone', 300)
  if (!HOST_PORT.test(hbone)) throw badRequest('"hbone" must be host:port (the node agent\'s HBONE address)')
  return {
    hbone, ips: ips as string[], name: requireK8sName(input, 'name'), namespace: requireK8sName(input, 'namespace'), node,
    serviceAccount: requireK8sName(input, 'serviceAccount'), uid,
  }
}

/** A node may only change its own workloads (a uid held by another node is a conflict). */
async function checkOwner(services: Parameters<Route['handle']>[0]['services'], uid: string, node: string): Promise<WorkloadRecord | undefined> {
  const existing = await services.store.getResource('workload', uid)
  if (existing && existing.node !== node) {
    throw new ZtError('ZT_ERR_CONFLICT', `workload "${uid}" belongs to node "${existing.node}"`, {exit: ExitCode.conflict, suggestion: 'each node agent publishes only its own workloads'})
  }

  return existing
}

export const workloadRoutes: Route[] = [
  {
    access: 'identity',
    async handle({body, principal, services}) {
      const node = requireNode(principal)
      const input = asObject(body)
      const namespace = requireK8sName(input, 'namespace')
      const serviceAccount = requireK8sName(input, 'serviceAccount')
      await services.nodeAuthority.authorize(node, {namespace, serviceAccount})
      const spiffe = workloadSpiffe(services.trustDomain, namespace, serviceAccount)
      const issued = await issueWorkloadCert(services, node, spiffe, requireString(input, 'csr'))
      services.logger.info({node: node.name, serial: issued.record.serial, spiffe}, 'workload certificate issued')
      return {ca: services.ca.bundle, cert: issued.cert, spiffe}
    },
    method: 'POST',
    path: '/v1/workload-certs',
  },
  {
    access: 'identity',
    async handle({body, params, principal, services}) {
      const node = requireNode(principal)
      const workload = parseWorkload(params.uid, body, node.name)
      await services.nodeAuthority.authorize(node, workload)
      await checkOwner(services, workload.uid, node.name)
      return {version: await services.store.putResource('workload', workload.uid, workload)}
    },
    method: 'PUT',
    path: '/v1/workloads/:uid',
  },
  {
    access: 'identity',
    async handle({params, principal, services}) {
      const node = requireNode(principal).name
      if (!(await checkOwner(services, params.uid, node))) {
        throw new ZtError('ZT_ERR_NOT_FOUND', `workload "${params.uid}" does not exist`, {exit: ExitCode.notFound})
      }

      return {version: await services.store.deleteResource('workload', params.uid)}
    },
    method: 'DELETE',
    path: '/v1/workloads/:uid',
  },
]

// A node agent in a cluster (`agent run --kubernetes`) has no identity file: it proves who it is with
// its pod's projected ServiceAccount token (audience ztctl). It trusts only the CA bundle the controller
// publishes (ConfigMap ztctl-ca-root, mounted into the pod) and, in the TLS handshake, before the token
// leaves the pod, checks that the server is the controller (its SPIFFE ID), not any holder of a mesh
// certificate. The key is made here and never leaves the pod. Renewal is the same call with the
// token the kubelet has refreshed meanwhile.
import {createPrivateKey, X509Certificate} from 'node:crypto'
import {readFile} from 'node:fs/promises'

import {controllerSpiffe} from '../controller/routes/types.js'
import {ExitCode, ZtError} from '../errors.js'
import type {IdentityFile} from '../identity/file.js'
import {certInfo, splitPem} from '../pki/cert-info.js'
import {ControllerClient} from './controller-client.js'

export interface KubeEnrollOptions {
  /** https://IP:PORT: the Service address from ZTCTL_CONTROLLER_SERVICE_HOST/PORT (pods have no cluster DNS here) */
  controller: string
  /** the CA bundle the controller publishes (ConfigMap ztctl-ca-root) */
  caFile: string
  /** the node the agent runs on (NODE_NAME, from the downward API): the controller checks the token's pod runs there */
  node?: string
  timeoutMs?: number
  /** the projected ServiceAccount token */
  tokenFile: string
}

interface KubeEnrollResponse {
  ca: string
  cert: string
  name: string
  spiffe: string
}

export async function enrollWithServiceAccount(options: KubeEnrollOptions): Promise<IdentityFile> {
  const ca = await readInput(options.caFile, 'the CA bundle', 'the controller publishes it as ConfigMap ztctl-ca-root when it first starts; the pod mounts it')
  const roots = splitPem(ca)
  const trustDomain = roots.length > 0 ? certInfo(roots[0]).spiffe?.replace(/^spiffe:\/\//, '') : undefined
  if (!trustDomain) {
    throw new ZtError('ZT_ERR_BAD_CA', `${options.caFile} holds no CA certificate with a SPIFFE trust domain`, {
      suggestion: 'mount ConfigMap ztctl-ca-root (key root-cert.pem) as the controller wrote it',
    })
  }

  const token = (await readInput(options.tokenFile, 'the ServiceAccount token', 'project a serviceAccountToken volume with audience ztctl')).trim()
  // Loaded on demand: the X.509 generator is heavy and enrollment is rare.
  const {createKeyAndCsr} = await import('../pki/pki.js')
  const {csrPem, keyPem} = await createKeyAndCsr(options.node ? `node-${options.node}` : 'node-agent')
  const client = new ControllerClient({ca, serverSpiffe: controllerSpiffe(trustDomain), timeoutMs: options.timeoutMs, url: options.controller})
  let response: KubeEnrollResponse
  try {
    response = await client.request<KubeEnrollResponse>('POST', '/v1/kube/enroll', {csr: csrPem, node: options.node, token})
  } finally {
    client.close()
  }

  const leaf = new X509Certificate(response.cert)
  if (!leaf.checkPrivateKey(createPrivateKey(keyPem)) || !roots.some((root) => leaf.checkIssued(new X509Certificate(root)))) {
    throw new ZtError('ZT_ERR_BAD_RESPONSE', 'the controller returned a certificate that does not match the request')
  }

  // The URL we reached it at, not the one it advertises: inside the cluster that is the Service address.
  return {ca: response.ca, cert: response.cert, controller: options.controller, key: keyPem, name: response.name, spiffe: response.spiffe, version: 1}
}

/** Errors worth retrying (the controller not up yet, the CA not published yet) as opposed to a refusal. */
export function isTransientEnrollError(error: unknown): boolean {
  if (!ZtError.is(error)) return true
  return ['ZT_ERR_BUSY', 'ZT_ERR_CONTROLLER_UNREACHABLE', 'ZT_ERR_KUBE_INPUT_MISSING', 'ZT_ERR_KUBE_UNREACHABLE', 'ZT_ERR_STORE_UNAVAILABLE', 'ZT_ERR_INTERNAL'].includes(error.code)
}

async function readInput(file: string, what: string, suggestion: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (error) {
    throw new ZtError('ZT_ERR_KUBE_INPUT_MISSING', `cannot read ${what} ${file}: ${(error as Error).message}`, {cause: error, exit: ExitCode.notFound, suggestion})
  }
}

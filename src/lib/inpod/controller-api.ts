// The node agent's calls to the controller API for its workloads, with its current identity (a
// renewed certificate is picked up on the next call). One short-lived HTTP/2 session per call: these
// calls are rare (a workload added or removed, a certificate issued or renewed).
import type {IdentityFile} from '../identity/file.js'
import type {IssueWorkloadCert} from './certs.js'
import type {ControllerCall} from './publisher.js'

async function call<T>(identity: IdentityFile, method: 'DELETE' | 'POST' | 'PUT', path: string, body?: unknown): Promise<T> {
  const {ControllerClient} = await import('../client/controller-client.js')
  const client = ControllerClient.fromIdentity(identity)
  try {
    return await client.request<T>(method, path, body)
  } finally {
    client.close()
  }
}

export function controllerCall(identity: () => IdentityFile): ControllerCall {
  return (method, path, body) => call(identity(), method, path, body)
}

export function controllerCertIssuer(identity: () => IdentityFile): IssueWorkloadCert {
  return (request) => call(identity(), 'POST', '/v1/workload-certs', request)
}

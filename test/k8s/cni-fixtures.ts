// What the CNI tests on a real cluster share: busybox pods (an HTTP server, sleepers) with their own service
// accounts, one HTTP request from a pod, the node agent's access log entry of a connection, step timings.
import type {V1Pod} from '@kubernetes/client-node'

import type {Cluster} from '../helpers/k8s.js'
import {waitUntil} from '../helpers/wait.js'

const INSTALL_NS = 'ztctl-system'

export const BUSYBOX = 'ztctl.local/busybox:dev'
export const PORT = 8080

export function pod(namespace: string, name: string, serviceAccount: string, command: string[], annotations: Record<string, string> = {}): V1Pod {
  return {
    metadata: {annotations, labels: {app: name}, name, namespace},
    spec: {
      containers: [{command, image: BUSYBOX, imagePullPolicy: 'Never', name}],
      serviceAccountName: serviceAccount, terminationGracePeriodSeconds: 0,
    },
  }
}

export const server = (namespace: string): V1Pod =>
  pod(namespace, 'server', 'server', ['sh', '-c', `mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p ${PORT} -h /www`])
export const sleeper = (namespace: string, name: string, serviceAccount = name, annotations: Record<string, string> = {}): V1Pod => pod(namespace, name, serviceAccount, ['sleep', '3600'], annotations)

/** One HTTP request from the pod with busybox nc (its static wget crashes); code 0 only with the page's body. */
export async function fetchFrom(cluster: Cluster, namespace: string, name: string, ip: string, port = PORT): Promise<{code: number; out: string}> {
  const result = await cluster.exec(namespace, name, ['sh', '-c', `printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${ip} ${port}`], {timeoutMs: 20_000})
  const body = result.stdout.split('\r\n\r\n')[1] ?? ''
  return {code: result.code === 0 && result.stdout.startsWith('HTTP/1.') ? 0 : result.code || 1, out: body || result.stdout + result.stderr}
}

/** fetchFrom until it is served (the mesh may still be taking the pods in), within TIMEOUTMS. */
export async function fetchWhenServed(what: string, cluster: Cluster, namespace: string, name: string, ip: string, port = PORT, {timeoutMs = 60_000} = {}): Promise<{code: number; out: string}> {
  return waitUntil(what, async () => {
    const result = await fetchFrom(cluster, namespace, name, ip, port)
    return result.code === 0 ? result : undefined
  }, timeoutMs, 500)
}

/** Service accounts, each with its token (Kubernetes 1.20 admits no pod of a service account before its token exists). */
export async function createServiceAccounts(cluster: Cluster, namespace: string, names: string[]): Promise<void> {
  for (const name of names) await cluster.core.createNamespacedServiceAccount({body: {metadata: {name}}, namespace})
  for (const name of names) {
    await waitUntil(`the token of ${namespace}/${name}`, () => cluster.core.readNamespacedServiceAccount({name, namespace}).then((sa) => (sa.secrets?.length ? sa : undefined)), 60_000)
  }
}

/** The first access log entry of a connection from SOURCE (a SPIFFE ID) in a node agent's log text. */
export function findAccessEntry(log: string, source: string): Record<string, unknown> | undefined {
  return log.split('\n').filter((text) => text.includes('"scope":"access"'))
    .map((text) => JSON.parse(text) as Record<string, unknown>).find((entry) => entry['src.identity'] === source)
}

/** The node agent pod's access log entry of a connection from SOURCE, once it is written. */
export async function accessLogEntry(cluster: Cluster, agentPod: string, source: string): Promise<Record<string, unknown>> {
  return waitUntil(`the access log line from ${source} on ${agentPod}`, async () => findAccessEntry(await cluster.podLogs(INSTALL_NS, agentPod), source), 30_000, 500)
}

/** Each step's wall time by name, for a test's diagnostic line. */
export function stepTimer(): {step: <T>(name: string, work: () => Promise<T>) => Promise<T>; timings: Record<string, number>} {
  const timings: Record<string, number> = {}
  const step = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const started = Date.now()
    try {
      return await work()
    } finally {
      timings[name] = Date.now() - started
    }
  }

  return {step, timings}
}

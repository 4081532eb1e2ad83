// `ztctl verify-install --traffic` (issue 12): after the resource checks, a real connection through the mesh.
// A uniquely named namespace labelled for ambient mode gets a server and a client pod (the node agent's own
// image, which is on every node: no registry pull); the client connects to the server's pod IP, and the node
// agent on the client's node must log that connection with both SPIFFE IDs (an HBONE/mTLS connection: the
// access log names identities only for connections it authenticated). The namespace is always deleted.
import {randomBytes} from 'node:crypto'

import type {Check} from './install/verify.js'
import {isMissing, type KubeClient} from './rest.js'
import {imageOf, type InstallValues, type KubeObject} from './manifest/objects.js'
import type {Rendering} from './manifest/render.js'
import {NODE_AGENT_SERVICE_ACCOUNT} from './objects.js'

const PROBE_PORT = 8080
const REPLY = 'ztctl-probe-ok'
const POLL_MS = 500

export interface TrafficOptions {
  /** the node agents' image (what install runs on the nodes) */
  image: string
  installNamespace: string
  /** the whole probe, cleanup excluded */
  timeoutMs: number
  trustDomain?: string
  /** aborted (Ctrl-C): stop waiting, still clean up */
  signal?: AbortSignal
}

interface PodStatus {
  conditions?: {status: string; type: string}[]
  phase?: string
  podIP?: string
}

type Pod = KubeObject & {spec?: {nodeName?: string}; status?: PodStatus}

// not unref()ed: between polls this timer is all that keeps the CLI alive, and each wait is bounded by its deadline
const sleep = (ms: number): Promise<void> => new Promise((resolve) => {
  setTimeout(resolve, ms)
})

const serverScript = `require('net').createServer((s) => s.end('${REPLY}\\n')).listen(${PROBE_PORT})`
// bounded retries: the pod may start before its redirection is in place; the process ends when nothing is left to do
const clientScript = `const net = require('net'); let left = 40;
const attempt = () => { const s = net.connect(${PROBE_PORT}, process.env.SERVER_IP); let got = '';
  s.setTimeout(3000, () => s.destroy(new Error('timeout')));
  s.on('data', (d) => { got += d }); s.on('close', () => { if (got.includes('${REPLY}')) return; if (--left <= 0) { process.exitCode = 1; return } setTimeout(attempt, 500) });
  s.on('error', (e) => console.error(e.message)) };
attempt()`

function probePod(name: string, image: string, script: string, env: {name: string; value: string}[] = []): KubeObject {
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: {labels: {app: name}, name},
    spec: {
      containers: [{command: ['node', '-e', script], env, image, imagePullPolicy: 'IfNotPresent', name}],
      restartPolicy: 'Never', serviceAccountName: name, terminationGracePeriodSeconds: 0,
    },
  } as KubeObject
}

export function probeNamespaceName(): string {
  return `ztctl-verify-${randomBytes(3).toString('hex')}`
}

/** The traffic checks, one per step; the namespace is deleted before this returns (also on failure or abort). */
export async function verifyTraffic(kube: KubeClient, options: TrafficOptions, namespace = probeNamespaceName()): Promise<Check[]> {
  const deadline = Date.now() + options.timeoutMs
  const checks: Check[] = []
  const base = {kind: 'Traffic', namespace}
  try {
    await runSteps(kube, options, namespace, deadline, (check) => checks.push({...base, ...check}))
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    checks.push({...base, hints: [`kubectl -n ${namespace} get pods,events`, `kubectl -n ${options.installNamespace} get pods -o wide`], message, name: 'probe', ok: false})
  } finally {
    checks.push({...base, ...(await deleteNamespace(kube, namespace))})
  }

  return checks
}

type Step = Omit<Check, 'kind' | 'namespace'>

async function runSteps(kube: KubeClient, options: TrafficOptions, namespace: string, deadline: number, report: (check: Step) => void): Promise<void> {
  const wait = <T>(what: string, probe: () => Promise<T | undefined>) => waitFor(what, probe, deadline, options.signal)
  await kube.request('POST', '/api/v1/namespaces', {body: {metadata: {labels: {'ztctl.io/dataplane-mode': 'ambient'}, name: namespace}}, what: `create namespace ${namespace}`})
  const api = `/api/v1/namespaces/${namespace}`
  for (const name of ['probe-server', 'probe-client']) {
    await kube.request('POST', `${api}/serviceaccounts`, {body: {metadata: {name}}, what: `create service account ${name}`})
    // Kubernetes 1.20 admits no pod of a service account before its token exists
    await wait(`the token of service account ${name}`, async () => ((await kube.request<{secrets?: unknown[]}>('GET', `${api}/serviceaccounts/${name}`)).secrets?.length ? true : undefined))
  }

  report({hints: [], message: 'created, labelled ztctl.io/dataplane-mode=ambient', name: 'namespace', ok: true})
  await kube.request('POST', `${api}/pods`, {body: probePod('probe-server', options.image, serverScript), what: 'create pod probe-server'})
  const server = await wait('pod probe-server Ready', async () => {
    const pod = await kube.request<Pod>('GET', `${api}/pods/probe-server`)
    return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && pod.status.podIP ? pod : undefined
  })
  report({hints: [], message: `Ready at ${server.status!.podIP} on node ${server.spec?.nodeName}`, name: 'probe-server', ok: true})
  await kube.request('POST', `${api}/pods`, {body: probePod('probe-client', options.image, clientScript, [{name: 'SERVER_IP', value: server.status!.podIP!}]), what: 'create pod probe-client'})
  const client = await wait('pod probe-client to finish', async () => {
    const pod = await kube.request<Pod>('GET', `${api}/pods/probe-client`)
    return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed' ? pod : undefined
  })
  if (client.status?.phase !== 'Succeeded') {
    const log = await kube.request<string>('GET', `${api}/pods/probe-client/log`, {query: {tailLines: 5}, text: true}).catch(() => '')
    report({hints: [`kubectl -n ${options.installNamespace} logs -l app.kubernetes.io/name=${NODE_AGENT_SERVICE_ACCOUNT}`, 'ztctl proxy-config workloads --node ' + (client.spec?.nodeName ?? 'NODE')], logTail: log.split('\n').filter(Boolean), message: `could not reach probe-server at ${server.status!.podIP}:${PROBE_PORT}`, name: 'connection', ok: false})
    return
  }

  report({hints: [], message: `probe-client reached probe-server at ${server.status!.podIP}:${PROBE_PORT}`, name: 'connection', ok: true})
  report(await checkAccessLog(kube, options, namespace, client.spec?.nodeName ?? '', deadline))
}

/** The node agent on the client's node logged the connection with both SPIFFE IDs: it went over HBONE with mTLS. */
async function checkAccessLog(kube: KubeClient, options: TrafficOptions, namespace: string, node: string, deadline: number): Promise<Step> {
  const td = options.trustDomain ?? 'cluster.local'
  const src = `spiffe://${td}/ns/${namespace}/sa/probe-client`
  const dst = `spiffe://${td}/ns/${namespace}/sa/probe-server`
  const agents = await kube.request<{items: Pod[]}>('GET', `/api/v1/namespaces/${options.installNamespace}/pods`, {query: {fieldSelector: `spec.nodeName=${node}`, labelSelector: `app.kubernetes.io/name=${NODE_AGENT_SERVICE_ACCOUNT}`}})
  const agent = agents.items.find((pod) => pod.status?.phase === 'Running')?.metadata.name
  const hints = [`kubectl -n ${options.installNamespace} logs ${agent ?? `-l app.kubernetes.io/name=${NODE_AGENT_SERVICE_ACCOUNT}`} | grep '"scope":"access"'`, 'ztctl verify-install   # the node agent DaemonSet ready on every node?']
  if (!agent) return {hints, message: `no running node agent on node ${node}: the connection did not go through the mesh`, name: 'hbone', ok: false}
  const found = await waitFor('the access log line', async () => {
    const log = await kube.request<string>('GET', `/api/v1/namespaces/${options.installNamespace}/pods/${agent}/log`, {query: {sinceSeconds: 600}, text: true})
    return log.split('\n').find((line) => line.includes('"scope":"access"') && line.includes(`"src.identity":"${src}"`) && line.includes(`"dst.identity":"${dst}"`))
  }, Math.min(deadline, Date.now() + 15_000), options.signal).catch(() => undefined)
  if (!found) return {hints, message: `node agent ${agent} logged no HBONE connection ${src} → ${dst}: the connection bypassed the mesh`, name: 'hbone', ok: false}
  return {hints: [], message: `over HBONE (mTLS) through node agent ${agent}: ${src} → ${dst}`, name: 'hbone', ok: true}
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, deadline: number, signal?: AbortSignal): Promise<T> {
  for (;;) {
    if (signal?.aborted) throw new Error(`interrupted while waiting for ${what}`)
    const value = await probe().catch((error: unknown) => (isMissing(error) ? undefined : Promise.reject(error)))
    if (value !== undefined) return value
    if (Date.now() + POLL_MS > deadline) throw new Error(`timed out waiting for ${what} (raise --timeout?)`)
    await sleep(POLL_MS)
  }
}

/** Delete the probe namespace and wait (bounded) until it is gone. */
async function deleteNamespace(kube: KubeClient, namespace: string): Promise<Step> {
  const name = 'cleanup'
  try {
    await kube.request('DELETE', `/api/v1/namespaces/${namespace}`, {what: `delete namespace ${namespace}`})
  } catch (error) {
    if (!isMissing(error)) return {hints: [`kubectl delete namespace ${namespace}`], message: error instanceof Error ? error.message : String(error), name, ok: false}
  }

  const gone = await waitFor(`namespace ${namespace} to be gone`, async () => {
    try {
      await kube.request('GET', `/api/v1/namespaces/${namespace}`)
      return undefined
    } catch (error) {
      if (isMissing(error)) return true
      throw error
    }
  }, Date.now() + 120_000).catch(() => false)
  return gone ? {hints: [], message: `namespace ${namespace} deleted`, name, ok: true} : {hints: [`kubectl get namespace ${namespace}`], message: `namespace ${namespace} still terminating after 120 s`, name, ok: false}
}

/** Where the probe runs and what it expects, from the installed rendering: the node agent's image and the trust domain. */
export function probeImage(rendering: Rendering): Pick<TrafficOptions, 'image' | 'installNamespace' | 'trustDomain'> {
  const values = rendering.values as unknown as InstallValues
  return {image: imageOf(values, values.nodeAgent.image), installNamespace: rendering.namespace, trustDomain: values.trustDomain}
}

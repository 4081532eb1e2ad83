// `agent run --inpod-socket`: the in-pod data path of a node agent, in one object. Loads the state
// directory as the first snapshot, then serves the CNI socket. Traffic: 15001 → a mesh workload over
// HBONE (or the local fast path), a mesh service address (100.64.0.0/10 name, intercepted CIDR) to an
// endpoint of that service, anything else passed through from inside the pod with the skip mark;
// 15006 → the app; 15008 → the pod's own HBONE server; 15053 → the pod's DNS (mesh names, else upstream). Workloads are published to the controller and
// each served service account gets its certificate from it (both need the controller config source).
import type {WorkloadRecord} from '../config/types.js'
import type {MeshState} from '../proxy/state/state.js'
import {type IssueWorkloadCert, type WorkloadCertInfo, WorkloadCertificates} from './certs.js'
import {WorkloadDnsServers} from './dns.js'
import {InpodMesh, type MeshAgentContext} from './mesh.js'
import {type ControllerCall, WorkloadPublisher} from './publisher.js'
import {InpodServer, loadStateDir} from './server.js'
import {meshServices} from './services.js'
import {type WorkloadInfo, WorkloadManager} from './workloads.js'

export interface InpodOptions {
  socketPath: string
  stateDir: string
}

/** What the agent lends the in-pod data path: what the mesh router uses, and the publishing side's. */
export interface InpodAgentContext extends MeshAgentContext {
  /** the node agent's HBONE address as other agents dial it */
  advertise: () => string
  /** PUT/DELETE on the controller API with the agent's identity; undefined: nothing is published */
  controller?: ControllerCall
  /** signs a workload CSR (the controller's POST /v1/workload-certs); undefined: no mesh identity for pods */
  issueCert?: IssueWorkloadCert
}

export interface InpodRuntime {
  /** the mesh configuration changed: learn workloads, re-publish, cut revoked peers */
  applyConfig(state: MeshState): void
  certificates(): WorkloadCertInfo[]
  close(): void
  /** which engine moves the pods' bytes */
  readonly dataPath: 'native' | 'node'
  list(): WorkloadInfo[]
  readonly workloads: WorkloadManager
}

const noIssuer: IssueWorkloadCert = async () => {
  throw new Error('workload certificates need the controller (agent run without --config)')
}

export async function startInpod(options: InpodOptions, context: InpodAgentContext): Promise<InpodRuntime> {
  const log = (level: 'info' | 'warn') => (message: string, fields: Record<string, unknown> = {}) => context.logger()[level]({component: 'inpod', ...fields}, message)
  const certs = new WorkloadCertificates(context.issueCert ?? noIssuer, log('info'))
  // The mesh reads the workload set lazily (it is created right below, with the mesh's handlers).
  const mesh: InpodMesh = new InpodMesh({...context, certs}, () => workloads)
  const dns = new WorkloadDnsServers({logger: context.logger, records: () => meshServices(context.state()).records})
  const workloads: WorkloadManager = new WorkloadManager(
    {
      adoptListener: (kind, fd, workload) => mesh.adoptListener(kind, fd, workload),
      attach: (workload) => dns.attach(workload),
      hbone: (socket, workload) => mesh.hbone(socket, workload),
      inbound: (socket, workload, destination) => mesh.inbound(socket, workload, destination),
      meshConnections: (workload) => mesh.connectionsOf(workload),
      outbound: (socket, workload, destination) => mesh.outbound(socket, workload, destination),
    },
    (error, workload) => log('warn')('workload connection failed', {error: error.message, uid: workload.uid}),
  )
  const records = (): WorkloadRecord[] =>
    workloads.list().map((info) => ({hbone: context.advertise(), ips: info.ips, name: info.name, namespace: info.namespace, node: context.node, serviceAccount: info.serviceAccount, uid: info.uid}))
  const publisher = context.controller
    ? new WorkloadPublisher(context.controller, {local: records, published: () => Object.values(context.state().snapshot.workload ?? {}).filter((record) => record.node === context.node)}, log('warn'))
    : undefined
  const onChange = (): void => {
    mesh.reconcile()
    // The first workload of a service account fetches its certificate now, not on the first connection.
    if (context.issueCert) for (const info of workloads.list()) certs.get(info.namespace, info.serviceAccount).catch((error: unknown) => log('warn')('workload certificate not issued', {error: (error as Error).message, serviceAccount: info.serviceAccount}))
    void publisher?.sync()
  }

  const {adds, problems} = await loadStateDir(options.stateDir)
  for (const problem of problems) log('warn')('skipping an unreadable workload state file', {problem, stateDir: options.stateDir})
  const errors = await workloads.snapshot(adds)
  for (const [uid, error] of Object.entries(errors)) log('warn')('workload from the state directory not started', {error, uid})
  const server = new InpodServer({onChange, onError: (message, fields) => log('warn')(message, fields), socketPath: options.socketPath, workloads})
  await server.listen()
  onChange()
  log('info')('listener established', {socket: options.socketPath, stateDir: options.stateDir, workloads: adds.length - Object.keys(errors).length})
  return {
    applyConfig(state) {
      mesh.enforce(state)
      dns.refresh()
      void publisher?.sync()
    },
    certificates: () => certs.list(),
    close() {
      publisher?.close()
      server.close()
      workloads.closeAll()
      mesh.close()
    },
    dataPath: context.engine ? 'native' : 'node',
    list: () => workloads.list(),
    workloads,
  }
}

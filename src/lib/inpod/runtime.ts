// `agent run --inpod-socket`: the in-pod data path of a node agent, in one object. Loads the state
// directory as the first snapshot, then serves the CNI socket. Traffic: 15001 → the original
// destination (passthrough, from inside the pod with the skip mark), 15006 → the app. (HBONE on the
// pod's 15008 is refused until workload certificates are wired: see the report of issue 4.)
import type {Logger} from '../proxy/log.js'
import {InpodServer, loadStateDir} from './server.js'
import {type WorkloadHandlers, type WorkloadInfo, WorkloadManager, passthrough} from './workloads.js'

export interface InpodOptions {
  socketPath: string
  stateDir: string
}

export interface InpodRuntime {
  close(): void
  list(): WorkloadInfo[]
  readonly workloads: WorkloadManager
}

export async function startInpod(options: InpodOptions, logger: () => Logger, handlers: Partial<WorkloadHandlers> = {}): Promise<InpodRuntime> {
  const workloads = new WorkloadManager(
    {
      hbone: handlers.hbone ?? ((socket) => socket.destroy()),
      inbound: handlers.inbound ?? ((socket, workload, destination) => void passthrough(socket, workload, destination)),
      outbound: handlers.outbound ?? ((socket, workload, destination) => void passthrough(socket, workload, destination)),
    },
    (error, workload) => logger().warn({component: 'inpod', error: error.message, uid: workload.uid}, 'workload connection failed'),
  )
  const {adds, problems} = await loadStateDir(options.stateDir)
  for (const problem of problems) logger().warn({component: 'inpod', problem, stateDir: options.stateDir}, 'skipping an unreadable workload state file')
  const errors = await workloads.snapshot(adds)
  for (const [uid, error] of Object.entries(errors)) logger().warn({component: 'inpod', error, uid}, 'workload from the state directory not started')
  const server = new InpodServer({
    onError: (message, fields) => logger().warn({component: 'inpod', ...fields}, message),
    socketPath: options.socketPath,
    workloads,
  })
  await server.listen()
  logger().info({component: 'inpod', socket: options.socketPath, stateDir: options.stateDir, workloads: adds.length - Object.keys(errors).length}, 'listener established')
  return {
    close() {
      server.close()
      workloads.closeAll()
    },
    list: () => workloads.list(),
    workloads,
  }
}

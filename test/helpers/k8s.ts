// A real Kubernetes 1.20 for tests: etcd + kube-apiserver + controller-manager + scheduler, and real nodes
// (kubelet + containerd + runc + CNI bridge) with kube-proxy in iptables mode, from test/k8s/cluster/*.sh.
// Binaries come from $ZTCTL_K8S_CACHE (test/k8s/cluster/build.sh, which `npm test` runs first); every file
// starts and stops its own cluster. How it works, its figures and pitfalls: docs/kubernetes.md.
//
//   test('install', {timeout: K8S_TEST_TIMEOUT_MS}, async (t) => {
//     const cluster = await startCluster(t, {nodes: 1})   // waits its turn for the machine-wide lock
//     const image = await ztctlImage()                     // npm run image's archive, rebuilt when stale
//     await cluster.importImage(image.tar)                 // into every node's containerd
//     await cluster.createNamespace('demo')                // returns once its default ServiceAccount can admit pods
//     await cluster.core.createNamespacedPod({namespace: 'default', body: {...image: image.ref...}})
//     await cluster.waitForPodReady('default', 'web')
//     await cluster.exec('default', 'web', ['iptables-nft', '-V'])          // → {code, stdout, stderr}
//     const fwd = await cluster.portForward('default', 'web', 15000)       // 127.0.0.1:fwd.port → pod:15000
//   })                                                      // t.after tears it all down and checks it is gone
//
// cluster.kc is a client-node KubeConfig (admin), cluster.kubeconfigPath its file; cluster.nodes[i] has the
// node name, IP (its bridge), pod CIDR, containerd socket and CNI dirs; cluster.kubernetesServiceIp is what
// pods see as KUBERNETES_SERVICE_HOST; nodeValues(node) points an install at one node's dirs,
// sharedNodeValues(cluster) at every node's ($(NODE_NAME) in the paths: one install for two nodes).
// No cluster DNS: pods find Services through <NAME>_SERVICE_HOST/_PORT.
// Pods reach only this cluster's addresses (they have no default route); nothing leaves the machine.
// On failure, every component's log tail is printed and the logs are kept in /tmp/ztctl-k8s-logs/<id>.
// If the test process dies, the 'exit'/signal handlers run down.sh; if it is SIGKILLed, the next start's sweep does.
import assert from 'node:assert/strict'
import {execFile, execFileSync, spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {PassThrough} from 'node:stream'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

import {AppsV1Api, CoreV1Api, Exec, KubeConfig, KubernetesObjectApi, PortForward, type V1Pod, type V1Status} from '@kubernetes/client-node'

import {requirePackages} from './tools.js'
import {waitUntil} from './wait.js'

const execFileAsync = promisify(execFile)
const REPO = fileURLToPath(new URL('../..', import.meta.url))
const SCRIPTS = path.join(REPO, 'test/k8s/cluster')
const CACHE = process.env.ZTCTL_K8S_CACHE ?? '/var/cache/ztctl-k8s'
const STATE_ROOT = process.env.ZTCTL_K8S_STATE_ROOT ?? '/var/tmp/ztctl-k8s'
const LOCK = process.env.ZTCTL_K8S_LOCK ?? '/run/ztctl-k8s.lock'
const KEPT_LOGS = '/tmp/ztctl-k8s-logs'
const LOCK_WAIT_S = Number(process.env.ZTCTL_K8S_LOCK_TIMEOUT ?? 1200)
/** A test that starts a cluster may first queue behind other files' clusters: give it this timeout. */
export const K8S_TEST_TIMEOUT_MS = (LOCK_WAIT_S + 900) * 1000
const LOG_TAIL_LINES = 30
const WAIT_MS = 60_000
// down.sh takes seconds on a quiet machine and over a minute on one running six engineers' tests
const DOWN_TIMEOUT_MS = 300_000
// up.sh waits at most 90 s for each component (ZTK8S_TIMEOUT); ~20 s quiet, over a minute busy
const UP_TIMEOUT_MS = 400_000

export interface ClusterNode {
  bridge: string
  cgroupRoot: string
  cniBinDir: string
  cniConfDir: string
  containerdSocket: string
  ip: string
  name: string
  /** where this node's containerd mounts pods' network namespaces (a shared mount, as on a systemd node) */
  netnsDir: string
  podCidr: string
  /** a host directory of this node's own for the CNI agent and node agent to share (cni.runDir) */
  runDir: string
}

/**
 * The `--set` values that point an installation at a harness node's own CNI and netns directories (the
 * nodes of one test machine share its filesystem; the defaults /etc/cni/net.d, /opt/cni/bin,
 * /var/run/netns and /var/run/ztctl/node are the machine's, not the node's).
 */
export function nodeValues(node: ClusterNode): string[] {
  return nodeSettings(node).flatMap((setting) => ['--set', setting])
}

/**
 * One set of values for every node of the cluster: each directory names `$(NODE_NAME)` where up.sh puts the
 * node's name (<state dir>/node-1/cni/net.d, <state dir>/ztctl-run/node-1, ...), so each agent pod mounts its
 * own node's directories although one DaemonSet serves both nodes (docs/kubernetes-cni.md).
 */
export function sharedNodeValues(cluster: Pick<Cluster, 'nodes'>): string[] {
  const [node] = cluster.nodes
  const perNode = (dir: string): string => {
    const parts = dir.split('/')
    assert.equal(parts.filter((part) => part === node.name).length, 1, `${dir} names ${node.name} once`)
    return parts.map((part) => (part === node.name ? '$(NODE_NAME)' : part)).join('/')
  }

  return nodeSettings({...node, cniBinDir: perNode(node.cniBinDir), cniConfDir: perNode(node.cniConfDir), netnsDir: perNode(node.netnsDir), runDir: perNode(node.runDir)})
    .flatMap((setting) => ['--set', setting])
}

/** The same values as `key=value` settings (for code that renders manifests itself). */
export function nodeSettings(node: ClusterNode): string[] {
  return [`cni.confDir=${node.cniConfDir}`, `cni.binDir=${node.cniBinDir}`, `cni.netnsDir=${node.netnsDir}`, `cni.runDir=${node.runDir}`]
}

interface ClusterInfo {
  apiAddress: string
  apiPort: number
  clusterCidr: string
  id: string
  kubeconfig: string
  kubernetesServiceIp: string
  logsDir: string
  nodes: ClusterNode[]
  /** the nodes' pod ranges together (kube-proxy's --cluster-cidr) */
  podCidr: string
  server: string
  serviceCidr: string
  stateDir: string
  timingsMs: Record<string, number>
}

export interface ExecResult {
  code: number
  stderr: string
  stdout: string
}

export interface Forward {
  port: number
  close(): Promise<void>
}

export interface Cluster {
  apps: AppsV1Api
  /** the /16 the cluster owns (nodes' pod ranges and the Service range are inside) */
  clusterCidr: string
  core: CoreV1Api
  id: string
  kc: KubeConfig
  kubeconfigPath: string
  /** kube-apiserver's address: node 1's IP (127.0.0.1 without nodes) */
  apiAddress: string
  kubernetesServiceIp: string
  nodes: ClusterNode[]
  objects: KubernetesObjectApi
  /** the nodes' pod ranges together (kube-proxy's --cluster-cidr) */
  podCidr: string
  server: string
  serviceCidr: string
  stateDir: string
  timingsMs: Record<string, number>
  /** a namespace whose default ServiceAccount can already admit pods (its token exists) */
  createNamespace(name: string): Promise<void>
  /** a command in a running container (client-node Exec, as kubectl exec); never throws on a non-zero exit */
  exec(namespace: string, pod: string, command: string[], options?: {container?: string; timeoutMs?: number}): Promise<ExecResult>
  importImage(tar: string): Promise<void>
  /** the tail of every component's log (etcd, kube-*, containerd, kubelet per node) */
  logTails(lines?: number): string
  podLogs(namespace: string, pod: string, container?: string): Promise<string>
  /** a local TCP port on 127.0.0.1 whose connections go to POD:PORT (client-node PortForward, one WebSocket each) */
  portForward(namespace: string, pod: string, port: number): Promise<Forward>
  /** idempotent; t.after calls it. Resolves to what is left on the host (empty when all is gone). */
  teardown(): Promise<string[]>
  waitForPodReady(namespace: string, pod: string, timeoutMs?: number): Promise<V1Pod>
}

export interface StartClusterOptions {
  /** nodes with kubelet + containerd + CNI (default 1; 0 = control plane only, on 127.0.0.1) */
  nodes?: 0 | 1 | 2
}

interface TestContextLike {
  after(fn: () => Promise<void> | void): void
  readonly passed?: boolean
}

// ---- the machine-wide lock: a `flock` child holds it while this process lives (its stdin is our pipe) ----
interface Lock {
  release(): void
}

/** who holds the lock, as far as the owner note says (holders that are not this harness write none) */
function lockOwner(): string {
  const note = existsSync(`${LOCK}.owner`) ? readFileSync(`${LOCK}.owner`, 'utf8').trim() : ''
  const pid = Number(/^pid=(\d+)/.exec(note)?.[1])
  return pid && existsSync(`/proc/${pid}`) ? note : 'a process that left no note (e.g. flock around the shared recipe)'
}

async function takeMachineLock(stateDir: string): Promise<Lock> {
  const holder = spawn('flock', ['--exclusive', '--wait', String(LOCK_WAIT_S), LOCK, 'sh', '-c', 'echo locked; exec cat >/dev/null'], {stdio: ['pipe', 'pipe', 'pipe']})
  let owner = ''
  const waitingNote = setTimeout(() => {
    owner = lockOwner()
    process.stderr.write(`[k8s] waiting for ${LOCK} (held by: ${owner})\n`)
  }, 1000)
  try {
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('locked') && resolve())
      holder.once('error', reject)
      holder.once('exit', (code) => reject(new Error(`could not take ${LOCK} within ${LOCK_WAIT_S} s (flock exit ${code}; held by: ${owner || lockOwner()}); ZTCTL_K8S_LOCK_TIMEOUT sets the wait`)))
    })
  } finally {
    clearTimeout(waitingNote)
  }

  // neither the holder nor its pipes keep the event loop alive: when this process ends, its stdin closes and the lock goes
  holder.unref()
  for (const pipe of [holder.stdin, holder.stdout, holder.stderr]) (pipe as unknown as {unref?: () => void})?.unref?.()
  execFileSync('sh', ['-c', 'echo "$1" > "$2"', 'sh', `pid=${process.pid} state=${stateDir} since=${new Date().toISOString()} cmd=${process.argv.slice(1).join(' ')}`, `${LOCK}.owner`])
  return {release: () => holder.stdin!.end()}
}

// ---- teardown safety net: one per process, for every cluster still up ------------------------------------
const liveClusters = new Map<string, {stateDir: string; lock: Lock}>()
let safetyNetInstalled = false

function installSafetyNet(): void {
  if (safetyNetInstalled) return
  safetyNetInstalled = true
  const downAllSync = (): void => {
    for (const [id, {lock, stateDir}] of liveClusters) {
      try {
        execFileSync('bash', [path.join(SCRIPTS, 'down.sh'), stateDir], {stdio: 'ignore', timeout: DOWN_TIMEOUT_MS})
      } catch {
        // the next start's sweep finishes the job
      }

      lock.release()
      liveClusters.delete(id)
    }
  }

  process.on('exit', downAllSync)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      downAllSync()
      process.kill(process.pid, signal) // the default action, now that this handler is gone
      process.exit(128 + os.constants.signals[signal])
    })
  }
}

function requireBinaries(nodes: number): void {
  const wanted = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', ...(nodes ? ['kubelet', 'kube-proxy'] : [])]
  const missing = wanted.filter((name) => !existsSync(path.join(CACHE, 'bin', name)))
  assert.deepEqual(missing, [], `Kubernetes binaries missing in ${CACHE}/bin: ${missing.join(', ')}. Build them once with `
    + `test/k8s/cluster/build.sh (~5.5 min cold; npm test runs it before the tests).`)
}

async function runScript(script: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 180_000): Promise<string> {
  try {
    const {stdout} = await execFileAsync('bash', [path.join(SCRIPTS, script), ...args], {env: {...process.env, ...env}, maxBuffer: 16 << 20, timeout: timeoutMs})
    return stdout.trim()
  } catch (error) {
    const {stderr = '', stdout = ''} = error as {stderr?: string; stdout?: string}
    throw new Error(`${script} failed: ${(error as Error).message.split('\n')[0]}\n${stdout}${stderr}`.trim(), {cause: error})
  }
}

function tails(logsDir: string, lines: number): string {
  if (!existsSync(logsDir)) return `(no logs: ${logsDir} is gone)`
  return readdirSync(logsDir).sort().map((file) => {
    const text = readFileSync(path.join(logsDir, file), 'utf8').trimEnd().split('\n')
    return `---- ${file} (last ${Math.min(lines, text.length)} of ${text.length} lines)\n${text.slice(-lines).join('\n')}`
  }).join('\n')
}

/** What a cluster has on the host besides its recorded names: its processes (PID → start time), pod UIDs, and the sysctls as they were before it. */
interface Footprint {
  podUids: string[]
  processes: Map<number, string>
  sysctls: Map<string, string>
}

/** a running process's start time (field 22 of /proc/PID/stat), so that a reused PID is not taken for ours; undefined for a zombie */
function startTime(pid: number): string | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')
    return fields[0] === 'Z' || fields[0] === 'X' ? undefined : fields[19]
  } catch {
    return undefined
  }
}

/** the recorded daemons, whatever runs in the nodes' cgroups (containers) or names the state dir (shims), the pods kubelet ran */
function footprintOf(info: ClusterInfo): Footprint {
  const pids = new Set<number>()
  const pidDir = path.join(info.stateDir, 'pids')
  for (const file of existsSync(pidDir) ? readdirSync(pidDir) : []) pids.add(Number(readFileSync(path.join(pidDir, file), 'utf8')))
  for (const node of info.nodes) {
    const output = execFileSync('sh', ['-c', `find /sys/fs/cgroup/pids${node.cgroupRoot} -name cgroup.procs -exec cat {} + 2>/dev/null || true`]).toString()
    for (const pid of output.split('\n').filter(Boolean)) pids.add(Number(pid))
  }

  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(`${info.stateDir}/`)) pids.add(Number(entry))
    } catch {
      // gone meanwhile
    }
  }

  const processes = new Map<number, string>()
  for (const pid of pids) {
    const started = startTime(pid)
    if (started && pid !== process.pid) processes.set(pid, started)
  }

  const podUids = info.nodes.flatMap((node) => {
    const podsDir = path.join(info.stateDir, node.name, 'kubelet/root/pods')
    return existsSync(podsDir) ? readdirSync(podsDir) : []
  })
  const saved = path.join(info.stateDir, 'created/sysctl.saved')
  const sysctls = new Map(existsSync(saved) ? readFileSync(saved, 'utf8').split('\n').filter(Boolean).map((line) => line.split('=', 2) as [string, string]) : [])
  return {podUids, processes, sysctls}
}

/** What of this cluster is still on the host: processes, mounts, bridges, cgroups, routes, kube-proxy chains, pod logs, changed sysctls. */
async function leftovers(info: ClusterInfo, footprint: Footprint): Promise<string[]> {
  const found: string[] = []
  for (const [pid, started] of footprint.processes) if (startTime(pid) === started) found.push(`process ${pid}`)
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').filter((line) => line.includes(` ${info.stateDir}/`))
  found.push(...mounts.map((line) => `mount ${line.split(' ')[1]}`))
  if (existsSync(info.stateDir)) found.push(`state dir ${info.stateDir}`)
  for (const node of info.nodes) {
    if (existsSync(`/sys/class/net/${node.bridge}`)) found.push(`bridge ${node.bridge}`)
    for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
      if (existsSync(`/sys/fs/cgroup/${hierarchy}${node.cgroupRoot}`)) found.push(`cgroup ${hierarchy}${node.cgroupRoot}`)
    }
  }

  for (const [key, before] of footprint.sysctls) {
    const now = readFileSync(`/proc/sys/${key.replaceAll('.', '/')}`, 'utf8').trim()
    if (now !== before) found.push(`sysctl ${key} = ${now} (was ${before})`)
  }

  const podLogs = existsSync('/var/log/pods') ? readdirSync('/var/log/pods') : []
  found.push(...podLogs.filter((dir) => footprint.podUids.some((uid) => dir.endsWith(`_${uid}`))).map((dir) => `pod logs /var/log/pods/${dir}`))
  const {stdout: routes} = await execFileAsync('ip', ['-4', 'route', 'show', 'table', 'all'])
  const prefix = info.clusterCidr.split('.').slice(0, 2).join('.') + '.'
  found.push(...routes.split('\n').filter((line) => line.includes(prefix)).map((line) => `route ${line}`))
  if (info.nodes.length > 0) {
    for (const save of ['iptables-save', 'ip6tables-save']) {
      const {stdout} = await execFileAsync(save, [])
      found.push(...stdout.split('\n').filter((line) => line.includes('KUBE-')).map((line) => `${save}: ${line}`))
    }
  }

  return found
}

export async function startCluster(t: TestContextLike, options: StartClusterOptions = {}): Promise<Cluster> {
  const nodes = options.nodes ?? 1
  assert.equal(process.getuid?.(), 0, 'a Kubernetes cluster needs root (bridges, cgroups, mounts, iptables)')
  requirePackages('util-linux', 'etcd-server', 'openssl', 'curl', 'iproute2')
  if (nodes > 0) requirePackages('containerd', 'runc', 'containernetworking-plugins', 'conntrack', 'iptables', 'busybox-static', 'umoci', 'skopeo')
  requireBinaries(nodes)
  const stateDir = path.join(STATE_ROOT, `t-${randomBytes(3).toString('hex')}`)
  const lock = await takeMachineLock(stateDir)
  let info: ClusterInfo
  try {
    await runScript('sweep.sh', [], {}, 300_000)
    installSafetyNet()
    liveClusters.set(stateDir, {lock, stateDir})
    try {
      await runScript('up.sh', [], {ZTK8S_NODES: String(nodes), ZTK8S_OWNER_PID: String(process.pid), ZTK8S_STATE: stateDir}, UP_TIMEOUT_MS)
    } catch (error) {
      const logs = tails(path.join(stateDir, 'logs'), LOG_TAIL_LINES)
      await runScript('down.sh', [stateDir]).catch(() => undefined)
      throw new Error(`${(error as Error).message}\n${logs}`, {cause: error})
    }

    info = JSON.parse(readFileSync(path.join(stateDir, 'cluster.json'), 'utf8')) as ClusterInfo
  } catch (error) {
    liveClusters.delete(stateDir)
    lock.release()
    throw error
  }

  const kc = new KubeConfig()
  kc.loadFromFile(info.kubeconfig)
  let torndown: Promise<string[]> | undefined
  /** down.sh once (KEEP: copy the logs there first), release the lock, then list what is left */
  const down = (keep?: string): Promise<string[]> => {
    torndown ??= (async () => {
      const footprint = footprintOf(info)
      // kubelet may finish deleting a pod (its dir under the state dir) before down.sh stops it, but it leaves
      // that pod's log dir: down.sh removes the log dirs of these UIDs too.
      writeFileSync(path.join(info.stateDir, 'created/pod-uids'), footprint.podUids.join('\n'))
      try {
        await runScript('down.sh', [info.stateDir], keep ? {ZTK8S_KEEP_LOGS: keep} : {}, DOWN_TIMEOUT_MS)
      } finally {
        liveClusters.delete(stateDir)
        lock.release()
      }

      return leftovers(info, footprint)
    })()
    return torndown
  }

  const cluster: Cluster = {
    apiAddress: info.apiAddress,
    apps: kc.makeApiClient(AppsV1Api),
    clusterCidr: info.clusterCidr,
    core: kc.makeApiClient(CoreV1Api),
    async createNamespace(name) {
      await cluster.core.createNamespace({body: {metadata: {name}}})
      await waitUntil(`the default ServiceAccount token of namespace ${name}`, async () => {
        const account = await cluster.core.readNamespacedServiceAccount({name: 'default', namespace: name})
        return (account.secrets?.length ?? 0) > 0
      }, WAIT_MS)
    },
    exec: (namespace, pod, command, execOptions) => execInPod(kc, namespace, pod, command, execOptions),
    id: info.id,
    async importImage(tar) {
      await runScript('import.sh', [info.stateDir, tar])
    },
    kc,
    kubeconfigPath: info.kubeconfig,
    kubernetesServiceIp: info.kubernetesServiceIp,
    logTails: (lines = LOG_TAIL_LINES) => tails(info.logsDir, lines),
    nodes: info.nodes,
    objects: KubernetesObjectApi.makeApiClient(kc),
    async podLogs(namespace, pod, container) {
      try {
        return await cluster.core.readNamespacedPodLog({container, name: pod, namespace})
      } catch (error) {
        const log = runtimeLog(info.stateDir, namespace, pod, container)
        if (log === undefined) throw error
        return log
      }
    },
    podCidr: info.podCidr,
    portForward: (namespace, pod, port) => forwardPort(kc, namespace, pod, port),
    server: info.server,
    serviceCidr: info.serviceCidr,
    stateDir: info.stateDir,
    teardown: () => down(),
    timingsMs: info.timingsMs,
    waitForPodReady: (namespace, pod, timeoutMs) => waitForPodReady(cluster.core, namespace, pod, timeoutMs),
  }
  t.after(async () => {
    let kept: string | undefined
    if (t.passed === false) {
      kept = path.join(KEPT_LOGS, info.id)
      process.stderr.write(`[k8s] test failed: logs of cluster ${info.id} kept in ${kept}\n${cluster.logTails()}\n`)
    }

    const left = await down(kept)
    assert.deepEqual(left, [], `cluster ${info.id} left things on the host`)
  })
  return cluster
}

/**
 * A running container's log read through the descriptor its node's containerd writes it with. On two nodes
 * each kubelet takes the other's pods for deleted and removes their log directories from the shared
 * /var/log/pods (kubelet 1.20's container GC, every minute; the path is fixed), so the API answers "no such
 * file" for a live container whose log containerd still writes. undefined: no such open log.
 */
function runtimeLog(stateDir: string, namespace: string, pod: string, container?: string): string | undefined {
  const pidDir = path.join(stateDir, 'pids')
  const prefix = `/var/log/pods/${namespace}_${pod}_`
  const open: {fd: string; target: string}[] = []
  for (const file of readdirSync(pidDir).filter((name) => name.endsWith('-containerd.pid'))) {
    const fdDir = `/proc/${readFileSync(path.join(pidDir, file), 'utf8').trim()}/fd`
    for (const fd of existsSync(fdDir) ? readdirSync(fdDir) : []) {
      const target = (() => {
        try {
          return readlinkSync(path.join(fdDir, fd))
        } catch {
          return '' // closed meanwhile
        }
      })()
      if (target.startsWith(prefix) && (!container || target.includes(`/${container}/`))) open.push({fd: path.join(fdDir, fd), target})
    }
  }

  const latest = open.sort((a, b) => a.target.localeCompare(b.target, undefined, {numeric: true})).at(-1)
  return latest && criLogText(readFileSync(latest.fd, 'utf8'))
}

/** The text of a CRI log file (`<time> <stream> <F|P> <text>` per line), as the API returns it. */
function criLogText(file: string): string {
  return file.split('\n').filter(Boolean).map((line) => {
    const [, , tag = 'F', ...text] = line.split(' ')
    return text.join(' ') + (tag === 'P' ? '' : '\n')
  }).join('')
}

async function waitForPodReady(core: CoreV1Api, namespace: string, name: string, timeoutMs = 120_000): Promise<V1Pod> {
  try {
    return await waitUntil(`pod ${namespace}/${name} Ready`, async () => {
      const pod = await core.readNamespacedPod({name, namespace})
      return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? pod : undefined
    }, timeoutMs, 200)
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${await describePod(core, namespace, name)}`, {cause: error})
  }
}

/** Phase, conditions, container states and the pod's events: what `kubectl describe pod` would show first. */
export async function describePod(core: CoreV1Api, namespace: string, name: string): Promise<string> {
  const pod = await core.readNamespacedPod({name, namespace}).catch((error: Error) => error)
  if (pod instanceof Error) return `pod ${namespace}/${name}: ${pod.message}`
  const events = await core.listNamespacedEvent({fieldSelector: `involvedObject.name=${name}`, namespace}).catch(() => ({items: []}))
  const states = (pod.status?.containerStatuses ?? []).map((c) => `${c.name}: ${JSON.stringify(c.state)} restarts=${c.restartCount}`)
  return [`pod ${namespace}/${name}: phase=${pod.status?.phase} node=${pod.spec?.nodeName} ip=${pod.status?.podIP}`,
    ...(pod.status?.conditions ?? []).map((c) => `  ${c.type}=${c.status} ${c.reason ?? ''} ${c.message ?? ''}`),
    ...states.map((s) => `  ${s}`),
    ...events.items.map((e) => `  event ${e.type} ${e.reason}: ${e.message}`)].join('\n')
}

async function execInPod(kc: KubeConfig, namespace: string, pod: string, command: string[], options: {container?: string; timeoutMs?: number} = {}): Promise<ExecResult> {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  const out: Buffer[] = []
  const err: Buffer[] = []
  stdout.on('data', (chunk: Buffer) => out.push(chunk))
  stderr.on('data', (chunk: Buffer) => err.push(chunk))
  let container = options.container
  if (!container) {
    const spec = await kc.makeApiClient(CoreV1Api).readNamespacedPod({name: pod, namespace})
    container = spec.spec!.containers[0].name
  }

  const code = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`exec ${command.join(' ')} in ${namespace}/${pod}: no exit status after ${options.timeoutMs ?? 30_000} ms`)), options.timeoutMs ?? 30_000)
    const done = (status: V1Status): void => {
      clearTimeout(timer)
      if (status.status === 'Success') return resolve(0)
      const exitCode = status.details?.causes?.find((cause) => cause.reason === 'ExitCode')?.message
      if (exitCode === undefined) return reject(new Error(`exec ${command.join(' ')} in ${namespace}/${pod}: ${status.message ?? JSON.stringify(status)}`))
      resolve(Number(exitCode))
    }

    new Exec(kc).exec(namespace, pod, container, command, stdout, stderr, null, false, done).catch((error: Error) => {
      clearTimeout(timer)
      reject(error)
    })
  })
  return {code, stderr: Buffer.concat(err).toString(), stdout: Buffer.concat(out).toString()}
}

async function forwardPort(kc: KubeConfig, namespace: string, pod: string, port: number): Promise<Forward> {
  const forwarder = new PortForward(kc)
  const sockets = new Set<net.Socket>()
  const server = net.createServer(async (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    // client-node writes what the pod still sends after our side ended (EPIPE): the socket is done, not the test.
    socket.on('error', () => {})
    try {
      const ws = await forwarder.portForward(namespace, pod, [port], socket, null, socket)
      if (typeof ws === 'function') return
      ws.on('close', () => socket.end())
      socket.once('close', () => ws.close())
    } catch (error) {
      socket.destroy(error as Error)
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
    port: (server.address() as net.AddressInfo).port,
  }
}

// ---- the project's image (npm run image) -----------------------------------------------------------------
export interface ZtctlImage {
  ref: string
  tar: string
}

/** The archive `npm run image` writes, (re)built when missing or older than the build output; needs a built dist/. */
export async function ztctlImage(): Promise<ZtctlImage> {
  requirePackages('umoci', 'skopeo', 'busybox-static', 'iptables', 'nftables', 'iproute2')
  const builder = path.join(REPO, 'src/lib/kube/image/build.mjs')
  // two test files may ask at once: the builder runs under a lock and skips when its archive is up to date
  mkdirSync(path.join(REPO, 'build'), {recursive: true})
  const {stdout} = await execFileAsync('flock', [path.join(REPO, 'build/.image.lock'), process.execPath, builder, '--json'], {maxBuffer: 16 << 20, timeout: 240_000})
    .catch((error: Error & {stderr?: string}) => {
      throw new Error(`npm run image failed: ${error.message}\n${error.stderr ?? ''}`)
    })
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as ZtctlImage
}

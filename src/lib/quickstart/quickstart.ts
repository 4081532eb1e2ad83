// `ztctl quickstart`: a whole mesh on one machine, unprivileged — a controller, two enrolled agents, a demo
// HTTP service behind an outbound tunnel on agent-b, and an inbound tunnel on agent-a to reach it.
// The controller runs in this process; the agents are real `ztctl agent run` child processes.
import {type ChildProcess, spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {once} from 'node:events'
import {createWriteStream} from 'node:fs'
import {mkdir, mkdtemp, readFile, rm} from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {enroll} from '../client/enroll.js'
import {createIdentity} from '../client/identities.js'
import {openSession} from '../client/session.js'
import {startController} from '../controller/controller.js'
import {ExitCode, ZtError} from '../errors.js'
import type {Home} from '../home/home.js'
import {openInbound, openOutbound} from '../mesh/tunnels.js'
import type {ReadyFile} from '../proxy/daemon/launch.js'

export interface QuickstartOptions {
  /** `node` and `bin/run.js`: how to start `ztctl agent run` */
  cli: {entry: string; node: string}
  /** serve the dashboard (`ztctl dashboard`) on a free loopback port too; default true */
  dashboard?: boolean
  /** keep everything in this folder (kept on exit); default a temporary folder, removed on exit */
  dir?: string
  /** local port of the inbound tunnel; default any free port */
  port?: number
  progress?: (step: string) => void
  version: string
}

export interface QuickstartAgent {
  addresses: ReadyFile['addresses']
  identityFile: string
  logFile: string
  name: string
  pid: number
}

export interface Quickstart {
  agents: QuickstartAgent[]
  controller: {adminIdentity: string; url: string}
  /** the dashboard's URL, with its one-run token */
  dashboard?: {url: string}
  demo: {service: string; target: string; url: string}
  home: string
  keep: boolean
  /** Stop the agents (SIGTERM, by PID), the demo service and the controller; remove a temporary home. */
  stop(): Promise<void>
}

const AGENT_NAMES = ['agent-a', 'agent-b'] as const
const SERVICE = 'tcp/demo'
const WAIT_MS = 15_000

export async function startQuickstart(options: QuickstartOptions): Promise<Quickstart> {
  const progress = options.progress ?? (() => {})
  const keep = options.dir !== undefined
  const root = keep ? path.resolve(options.dir!) : await mkdtemp(path.join(os.tmpdir(), 'ztctl-quickstart-'))
  await mkdir(path.join(root, 'logs'), {recursive: true})
  const home: Home = {configDir: root, dataDir: root}
  const children: ChildProcess[] = []
  const cleanups: (() => Promise<void>)[] = []
  const stop = async (): Promise<void> => {
    await Promise.allSettled(children.map((child) => stopChild(child)))
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
    if (!keep) await rm(root, {force: true, recursive: true})
  }

  try {
    progress('starting the controller')
    const controller = await startController({contextName: 'quickstart', home, listen: '127.0.0.1:0', version: options.version})
    cleanups.push(() => controller.close())

    // The demo answers with this run's nonce: the end-to-end check then knows it reached *our* service
    // through *our* agents, not another mesh's listener that happens to hold the port.
    const nonce = randomBytes(12).toString('hex')
    const demo = await startDemoService(nonce)
    cleanups.push(() => demo.close())

    const agents: QuickstartAgent[] = []
    for (const name of AGENT_NAMES) {
      progress(`enrolling ${name}`)
      const jwtPath = path.join(root, 'identities', `${name}.jwt`)
      const identityFile = path.join(root, 'identities', `${name}.json`)
      await createIdentity({home, name, out: jwtPath, roles: ['agent', 'quickstart']})
      await enroll({force: true, jwtPath, out: identityFile})
      progress(`starting ${name}`)
      const agent = await startAgent(options.cli, root, name, identityFile, children)
      agents.push(agent)
    }

    progress('opening the tunnels')
    const port = options.port ?? (await freePort())
    const session = await openSession({home})
    try {
      // Waits until the agents applied them: a port another process holds fails here, with agent-a's reason.
      await openOutbound(session, {agent: 'agent-b', service: SERVICE, targets: [demo.address]}, {waitMs: WAIT_MS})
      await openInbound(session, {agent: 'agent-a', listen: `127.0.0.1:${port}`, service: SERVICE}, {waitMs: WAIT_MS})
    } finally {
      session.close()
    }

    const url = `http://127.0.0.1:${port}/`
    progress(`checking ${url} end to end`)
    await waitForDemo(url, nonce)
    const dashboard = options.dashboard === false ? undefined : await startQuickstartDashboard(home, cleanups, progress)
    return {
      agents,
      controller: {adminIdentity: controller.adminIdentityPath, url: controller.url},
      dashboard,
      demo: {service: SERVICE, target: demo.address, url},
      home: root,
      keep,
      stop,
    }
  } catch (error) {
    await stop()
    throw error
  }
}

/** The dashboard on a free loopback port, with its own controller session; both closed by stop(). */
async function startQuickstartDashboard(home: Home, cleanups: (() => Promise<void>)[], progress: (step: string) => void): Promise<{url: string}> {
  progress('starting the dashboard')
  const {startDashboardForContext} = await import('../dashboard/start.js')
  const session = await openSession({home})
  cleanups.push(async () => session.close())
  const dashboard = await startDashboardForContext({api: session, home, listen: '127.0.0.1:0'})
  cleanups.push(() => dashboard.close())
  return {url: dashboard.url}
}

async function startAgent(cli: QuickstartOptions['cli'], root: string, name: string, identityFile: string, children: ChildProcess[]): Promise<QuickstartAgent> {
  const readyFile = path.join(root, 'agents', `${name}.json`)
  const logFile = path.join(root, 'logs', `${name}.log`)
  await mkdir(path.dirname(readyFile), {recursive: true})
  await rm(readyFile, {force: true})
  const log = createWriteStream(logFile, {flags: 'a'})
  await once(log, 'open')
  const loopback = '127.0.0.1:0'
  const child = spawn(
    cli.node,
    [cli.entry, 'agent', 'run', '-i', identityFile, '--hbone', loopback, '--admin', loopback, '--metrics', loopback, '--readiness', loopback, '--ready-file', readyFile, '--stop-with-stdin'],
    // stdin is a pipe we never write to: if this process dies, even by SIGKILL, the agent sees it close and exits.
    {env: {...process.env, ZTCTL_HOME: root}, stdio: ['pipe', log, log]},
  )
  children.push(child)
  const deadline = Date.now() + WAIT_MS
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new ZtError('ZT_ERR_QUICKSTART', `${name} exited with code ${child.exitCode} while starting`, {suggestion: `read its log: ${logFile}`})
    }

    const ready = await readFile(readyFile, 'utf8').then((text) => JSON.parse(text) as ReadyFile, () => undefined)
    if (ready) return {addresses: ready.addresses, identityFile, logFile, name, pid: child.pid!}
    await sleep(50)
  }

  throw new ZtError('ZT_ERR_QUICKSTART', `${name} did not become ready within ${WAIT_MS / 1000} s`, {
    exit: ExitCode.unreachable,
    suggestion: `read its log: ${logFile}`,
  })
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 8000)
  timer.unref()
  await exited
  clearTimeout(timer)
}

async function startDemoService(nonce: string): Promise<{address: string; close(): Promise<void>}> {
  const server = http.createServer((request, response) => {
    response.setHeader('content-type', 'text/plain')
    response.setHeader('x-ztctl-quickstart', nonce)
    response.end(`hello from the ztctl quickstart demo service: you reached ${SERVICE} through agent-a → HBONE/mTLS → agent-b\n`)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const {port} = server.address() as net.AddressInfo
  return {
    address: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const {port} = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Both agents applied the tunnels; poll the demo through them until it answers with this run's nonce. */
async function waitForDemo(url: string, nonce: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS
  let last: unknown
  while (Date.now() < deadline) {
    try {
      if ((await getOnce(url)).nonce === nonce) return
      last = new Error('something else answers there (not this quickstart\'s demo service: another mesh or process on that port?)')
    } catch (error) {
      last = error
    }

    await sleep(100)
  }

  throw new ZtError('ZT_ERR_QUICKSTART', `the demo service did not answer through the tunnel at ${url}: ${(last as Error)?.message}`, {
    exit: ExitCode.unreachable,
    suggestion: 'read the agents\' logs in the quickstart folder (run with --dir to keep it), or pick another --port',
  })
}

/**
 * One GET on a connection of its own, closed after the answer: a pooled keep-alive connection (fetch's)
 * would hold a tunnel open and make the agents wait for it when they drain on exit.
 */
async function getOnce(url: string): Promise<{body: string; nonce?: string}> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, {agent: false, headers: {connection: 'close'}, timeout: 2000}, (response) => {
      let body = ''
      const nonce = response.headers['x-ztctl-quickstart']
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => (body += chunk.slice(0, 4096)))
      response.on('end', () => (response.statusCode === 200 ? resolve({body, nonce: typeof nonce === 'string' ? nonce : undefined}) : reject(new Error(`HTTP ${response.statusCode}`))))
      response.on('error', reject)
    })
    request.on('timeout', () => request.destroy(new Error('timed out')))
    request.on('error', reject)
  })
}

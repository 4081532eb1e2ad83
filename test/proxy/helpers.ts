// Test fixtures for the data plane: a real mesh CA and identities, agents with static config files,
// echo targets, and bounded waiting. Nothing here replaces product code.
import {createHash} from 'node:crypto'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {type AddressInfo, connect, createServer, type Server, type Socket} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {PassThrough} from 'node:stream'
import type {TestContext} from 'node:test'

import {type ConfigSnapshot, emptySnapshot} from '../../src/lib/config/types.js'
import type {IdentityFile} from '../../src/lib/identity/file.js'
import {certInfo} from '../../src/lib/pki/cert-info.js'
import {createCA, createKeyAndCsr, createSigner, type Signer} from '../../src/lib/pki/pki.js'
import {type Agent, type AgentOptions, runAgent} from '../../src/lib/proxy/daemon/agent.js'
import {StaticConfigSource} from '../../src/lib/proxy/state/config-source.js'

export const TRUST_DOMAIN = 'test.mesh'

export interface Mesh {
  identity(name: string, ttlSeconds?: number): Promise<IdentityFile>
  signer: Signer
}

export async function createMesh(trustDomain = TRUST_DOMAIN): Promise<Mesh> {
  const signer = await createSigner(await createCA(trustDomain))
  return {
    async identity(name, ttlSeconds = 3600) {
      const {csrPem, keyPem} = await createKeyAndCsr(name)
      const spiffe = `spiffe://${trustDomain}/identity/${name}`
      const issued = await signer.signCsr(csrPem, {spiffe, ttlSeconds})
      return {ca: signer.ca.certPem, cert: issued.certPem, controller: 'https://127.0.0.1:1', key: keyPem, name, spiffe, version: 1}
    },
    signer,
  }
}

export const serialOf = (identity: IdentityFile): string => certInfo(identity.cert).serial

export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ztctl-proxy-'))
  t.after(() => rm(dir, {force: true, recursive: true}))
  return dir
}

/** An echo server: writes back what it reads, half-closes when the client does. */
export async function echoServer(t: TestContext): Promise<{port: number; server: Server}> {
  const sockets = new Set<Socket>()
  const server = createServer({allowHalfOpen: true}, (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.pipe(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => {
    server.close(() => resolve())
    for (const socket of sockets) socket.destroy()
  }))
  return {port: (server.address() as AddressInfo).port, server}
}

/** A port nothing listens on (bound then released). */
export async function deadPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

export interface RunningAgent {
  agent: Agent
  configFile: string
  /** JSON log lines, parsed */
  logs: Record<string, unknown>[]
  writeConfig(snapshot: ConfigSnapshot): Promise<void>
}

/** A log destination that parses the JSON lines written to it into LOGS. */
export function jsonLogSink(): {destination: PassThrough; logs: Record<string, unknown>[]} {
  const logs: Record<string, unknown>[] = []
  const destination = new PassThrough()
  let buffered = ''
  destination.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    const lines = buffered.split('\n')
    buffered = lines.pop()!
    for (const line of lines) if (line) logs.push(JSON.parse(line) as Record<string, unknown>)
  })
  return {destination, logs}
}

export async function startAgent(t: TestContext, dir: string, identity: IdentityFile, snapshot: ConfigSnapshot, extra: Partial<AgentOptions> = {}): Promise<RunningAgent> {
  const configFile = path.join(dir, `${identity.name}.config.json`)
  await writeFile(configFile, JSON.stringify(snapshot))
  const {destination, logs} = jsonLogSink()
  const agent = await runAgent({
    admin: '127.0.0.1:0',
    buildVersion: 'test',
    configSource: new StaticConfigSource(configFile),
    drainTimeoutMs: 2000,
    hbone: '127.0.0.1:0',
    identity,
    logDestination: destination,
    logLevel: 'debug',
    metrics: '127.0.0.1:0',
    readiness: '127.0.0.1:0',
    ...extra,
  })
  t.after(() => agent.shutdown('test over'))
  return {
    agent,
    configFile,
    logs,
    async writeConfig(next) {
      await writeFile(configFile, JSON.stringify(next))
    },
  }
}

/** Poll until `check` returns a truthy value; fail after timeoutMs. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 5000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const value = await check()
    if (value) return value as NonNullable<T>
    await new Promise((resolve) => setTimeout(resolve, 25))
  }

  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

/** A two-agent mesh config: `client` has an inbound tunnel for tcp/NAME, `server` hosts it. */
export function tunnelConfig(options: {
  client: IdentityFile
  clientHbone?: string
  name?: string
  server: IdentityFile
  serverHbone: string
  targets: {host: string; port: number; weight?: number}[]
}): ConfigSnapshot {
  const service = `tcp/${options.name ?? 'echo'}`
  const snapshot = emptySnapshot()
  snapshot.agent[options.server.name] = {hbone: options.serverHbone, name: options.server.name, spiffe: options.server.spiffe}
  if (options.clientHbone) snapshot.agent[options.client.name] = {hbone: options.clientHbone, name: options.client.name, spiffe: options.client.spiffe}
  snapshot.outbound[`${service}@${options.server.name}`] = {agent: options.server.name, allow: [], service, targets: options.targets}
  snapshot.inbound[`${service}@${options.client.name}`] = {agent: options.client.name, listen: '127.0.0.1:0', service}
  for (const identity of [options.client, options.server]) snapshot.identity[identity.name] = {name: identity.name, roles: [], spiffe: identity.spiffe}
  return snapshot
}

/**
 * Two agents in-process over real mTLS: `agent-a` with an inbound tunnel for tcp/echo (LISTEN), `agent-b`
 * hosting it towards TARGETS (default an echo server of its own).
 */
export async function echoTunnel(t: TestContext, options: {extra?: Partial<AgentOptions>; targets?: {host: string; port: number; weight?: number}[]} = {}) {
  const dir = await tempDir(t)
  const mesh = await createMesh()
  const [client, server] = await Promise.all([mesh.identity('agent-a'), mesh.identity('agent-b')])
  const echo = await echoServer(t)
  const targets = options.targets ?? [{host: '127.0.0.1', port: echo.port}]
  const serverAgent = await startAgent(t, dir, server, tunnelConfig({client, server, serverHbone: '127.0.0.1:1', targets}), options.extra)
  const config = tunnelConfig({client, server, serverHbone: serverAgent.agent.addresses.hbone, targets})
  const clientAgent = await startAgent(t, dir, client, config, options.extra)
  await clientAgent.agent.ready
  return {client, clientAgent, config, dir, echo, listen: clientAgent.agent.addresses.inbound['tcp/echo@agent-a'], mesh, server, serverAgent, targets}
}

/** Connect to host:port and resolve once connected. */
export async function dial(address: string): Promise<Socket> {
  const colon = address.lastIndexOf(':')
  const socket = connect({allowHalfOpen: true, host: address.slice(0, colon), port: Number(address.slice(colon + 1))})
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  return socket
}

/** Send DATA, half-close, and collect everything until the peer closes. */
export async function roundTrip(address: string, data: Buffer): Promise<Buffer> {
  return roundTripOn(await dial(address), data)
}

/** roundTrip over a socket already connected (a SOCKS5 tunnel, a socketpair). */
export async function roundTripOn(socket: Socket, data: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  const done = new Promise<void>((resolve, reject) => {
    socket.once('end', resolve)
    socket.once('error', reject)
  })
  socket.end(data)
  await done
  socket.destroy()
  return Buffer.concat(chunks)
}

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

export async function httpGet(url: string, method = 'GET'): Promise<{body: string; status: number}> {
  const response = await fetch(url, {method})
  return {body: await response.text(), status: response.status}
}

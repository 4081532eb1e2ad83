// How a CLI reaches an agent's app: with its own identity (the context's, or -i FILE), it asks the
// controller's directory (GET /v1/apps) where the agent is and whether the app is on, then opens an
// HBONE CONNECT to the agent itself: mutual TLS with the mesh CA, the agent's SPIFFE ID pinned, the
// reserved app :authority (proxy/state/apps.ts). The agent admits the stream with its own allow list and
// policies, so the identity that reaches the shell or the file is the user's, end to end. An agent that
// accepts no connection (`agent run --no-listen`) is reached through a hub it is attached to (the
// directory names them): a `relay` stream to the agent on our own session with the hub, and the same
// HBONE session inside it, TLS between our certificate and the agent's, that the hub splices unread; the
// command's streams to that agent share that one inner session.
import type {ClientHttp2Stream} from 'node:http2'

import type {AppName} from '../../config/types.js'
import type {AppDirectory} from '../../controller/routes/apps.js'
import {ExitCode, ZtError} from '../../errors.js'
import type {Home} from '../../home/home.js'
import {type IdentityFile, readIdentityFile} from '../../identity/file.js'
import {HboneError, HbonePool, type PoolOptions} from '../../proxy/hbone/hbone-pool.js'
import {POOL_DEFAULTS} from '../../proxy/hbone/pool-sessions.js'
import {HUB_AUTHORITY_PORT} from '../../proxy/hbone/hub-links.js'
import {Credentials} from '../../proxy/hbone/tls.js'
import {appAuthority, appService} from '../../proxy/state/apps.js'

export interface AppClientOptions {
  /** context to use (default: the current one); its identity unless IDENTITY_FILE is given */
  context?: string
  home: Home
  /** an identity file (`ztctl enroll` wrote it) to act as, instead of the context's */
  identityFile?: string
}

export type DirectoryAgent = AppDirectory['agents'][number]

export interface MeshClient {
  directory: AppDirectory
  identity: IdentityFile
}

const CONNECT_TIMEOUT_MS = 10_000

/** The identity to act as and the controller's app directory, read with it. */
export async function meshClient(options: AppClientOptions): Promise<MeshClient> {
  let client: {close(): void; request<T>(method: 'GET', path: string): Promise<T>}
  let identity: IdentityFile
  if (options.identityFile) {
    const [{ControllerClient}, {freshIdentity}] = await Promise.all([import('../../client/controller-client.js'), import('../../client/session.js')])
    // Renewed first when past half-life, as a context's identity is.
    identity = await freshIdentity(await readIdentityFile(options.identityFile), {
      file: options.identityFile, what: options.identityFile,
      suggestion: 'ask an admin for a new token (`ztctl identity create NAME`) and enroll it again (`ztctl enroll NAME.jwt`)',
    })
    client = ControllerClient.fromIdentity(identity)
  } else {
    // The context's identity, renewed first when past half-life (as every controller command does).
    const {openSession} = await import('../../client/session.js')
    const session = await openSession({context: options.context, home: options.home})
    identity = session.identity
    client = session
  }

  try {
    return {directory: await client.request<AppDirectory>('GET', '/v1/apps'), identity}
  } finally {
    client.close()
  }
}

/** AGENT's directory entry when it hosts APP; a ZtError naming what to do otherwise. */
export function appAgent(client: MeshClient, agent: string, app: AppName): DirectoryAgent {
  const entry = client.directory.agents.find((candidate) => candidate.name === agent)
  if (!entry?.apps.includes(app)) {
    const others = entry ? ` (it hosts: ${entry.apps.join(', ')})` : ''
    throw new ZtError('ZT_ERR_APP_OFF', `agent "${agent}" hosts no ${app} app${others}`, {
      exit: ExitCode.notFound,
      suggestion: `an admin switches it on: \`ztctl ${app} config --agent ${agent} --add-user @${client.identity.name}\``,
    })
  }

  if (!entry.hbone && (entry.hubs ?? []).length === 0) {
    throw new ZtError('ZT_ERR_AGENT_UNREACHABLE', `agent "${agent}" accepts no direct connection and is attached to no hub now`, {
      exit: ExitCode.unreachable,
      suggestion: `check that agent ${agent} runs with --hub and shows its hubs connected (\`ztctl proxy-config hubs\` on its host), or give it an --advertise address`,
    })
  }

  return entry
}

/** An HBONE session to an agent inside one relay stream through a hub, and the app streams it carries now. */
interface InnerSession {
  closed: boolean
  /** a session opened because the shared one was full: destroyed with its last stream */
  oneOff: boolean
  pool: HbonePool
  relay: ClientHttp2Stream
  streams: number
}

/**
 * This identity's app streams: direct ones share one HTTP/2 session per agent (and hub); the ones to an
 * agent reached through a hub share one inner session per agent, in one relay stream through the hub that
 * relay() picked, for as long as the command runs (a session that ended is replaced by the next stream).
 */
export class AppPool {
  private readonly options: PoolOptions
  private readonly direct: HbonePool
  private readonly shared = new Map<string, Promise<InnerSession>>()
  private readonly oneOffs = new Set<InnerSession>()

  constructor(client: MeshClient) {
    const revoked = new Set(client.directory.revokedSerials.map((serial) => serial.toUpperCase()))
    this.options = {connectTimeoutMs: CONNECT_TIMEOUT_MS, credentials: new Credentials(client.identity), isRevoked: (serial) => revoked.has(serial.toUpperCase()), responseTimeoutMs: CONNECT_TIMEOUT_MS}
    this.direct = new HbonePool(this.options)
  }

  /** APP's CONNECT stream on AGENT, once it answered 200; rejects with HboneError. */
  async open(agent: DirectoryAgent, app: AppName): Promise<ClientHttp2Stream> {
    const headers = {forwarded: `host="${appService(app)}"`}
    if (agent.hbone) return (await this.direct.open({address: agent.hbone, spiffe: agent.spiffe}, appAuthority(app), headers)).stream
    const inner = await this.claimInner(agent)
    try {
      const {stream} = await inner.pool.open({address: `${agent.name}:${HUB_AUTHORITY_PORT}`, spiffe: agent.spiffe}, appAuthority(app), headers)
      stream.once('close', () => this.release(inner))
      return stream
    } catch (error) {
      this.release(inner)
      throw error
    }
  }

  destroy(): void {
    for (const opening of this.shared.values()) void opening.then((inner) => close(inner), () => {})
    for (const inner of this.oneOffs) close(inner)
    this.shared.clear()
    this.oneOffs.clear()
    this.direct.destroy()
  }

  /**
   * A stream's place on the shared inner session to AGENT (opened on first use, again when it ended), or on
   * a one-off session when the shared one is full; counted at once, so the shared one never overflows.
   */
  private async claimInner(agent: DirectoryAgent): Promise<InnerSession> {
    for (let attempt = 0; attempt < 2; attempt++) {
      let opening = this.shared.get(agent.name)
      if (!opening) {
        opening = this.openInner(agent, false)
        this.shared.set(agent.name, opening)
      }

      const current = opening
      const forget = (): void => {
        if (this.shared.get(agent.name) === current) this.shared.delete(agent.name)
      }

      const inner = await current.catch((error: unknown) => {
        forget()
        throw error
      })
      if (!inner.closed) return inner.streams < POOL_DEFAULTS.maxStreamsPerSession ? claim(inner) : claim(await this.openInner(agent, true))
      forget() // it ended since: the next attempt opens another
    }

    return claim(await this.openInner(agent, true))
  }

  private async openInner(agent: DirectoryAgent, oneOff: boolean): Promise<InnerSession> {
    const relay = await this.relay(agent)
    // The relay carries exactly one TLS session: the pool never needs a second one (streams are counted).
    const inner: InnerSession = {closed: false, oneOff, pool: new HbonePool({...this.options, connectSocket: () => relay}), relay, streams: 0}
    relay.once('close', () => {
      inner.closed = true
      inner.pool.destroy()
    })
    if (oneOff) this.oneOffs.add(inner)
    return inner
  }

  private release(inner: InnerSession): void {
    inner.streams--
    if (!inner.oneOff || inner.streams > 0) return
    this.oneOffs.delete(inner)
    close(inner)
  }

  /** A relay stream to AGENT through the first of its hubs that has one (they come lowest round trip first). */
  private async relay(agent: DirectoryAgent): Promise<ClientHttp2Stream> {
    const failures: string[] = []
    for (const hub of agent.hubs) {
      try {
        return (await this.direct.open({address: hub.address, spiffe: hub.spiffe}, `${agent.name}:${HUB_AUTHORITY_PORT}`, {'ztctl-hub': 'relay'})).stream
      } catch (error) {
        const failure = error as HboneError
        // The hub's policy check: another hub decides alike.
        if (failure.status === 401) throw new HboneError(failure.code, failure.message, failure.flag, false, 401, `hub ${hub.address} refused the relay: ${failure.reason ?? failure.message}`)
        failures.push(`hub ${hub.address}: ${failure.message}`)
      }
    }

    throw new HboneError('ZT_ERR_HUB_RELAY', `no hub could reach agent ${agent.name} (${failures.join('; ')})`, 'CONNECT', true)
  }
}

function claim(inner: InnerSession): InnerSession {
  inner.streams++
  return inner
}

function close(inner: InnerSession): void {
  inner.pool.destroy()
  inner.relay.destroy()
}

/** A pool for this identity's app streams. */
export function appPool(client: MeshClient): AppPool {
  return new AppPool(client)
}

/** Open APP's stream on AGENT; refusals become ZtErrors in the agent's words. */
export async function openAppStream(pool: AppPool, client: MeshClient, agent: DirectoryAgent, app: AppName): Promise<ClientHttp2Stream> {
  try {
    return await pool.open(agent, app)
  } catch (error) {
    throw refusalError(error, agent.name, app, client.identity.name)
  }
}

function refusalError(error: unknown, agent: string, app: AppName, identity: string): ZtError {
  if (!(error instanceof HboneError)) return error as ZtError
  const addMe = `an admin adds you: \`ztctl ${app} config --agent ${agent} --add-user @${identity}\``
  switch (error.status) {
    case 403: {
      return new ZtError('ZT_ERR_APP_FORBIDDEN', `agent ${agent} refused identity "${identity}": ${error.reason ?? `not allowed to use its ${app} app`}`, {exit: ExitCode.auth, suggestion: addMe})
    }

    case 401: {
      return new ZtError('ZT_ERR_APP_DENIED', `agent ${agent} refused identity "${identity}": ${error.reason ?? 'denied by a policy (or a revoked certificate)'}`, {
        exit: ExitCode.auth,
        suggestion: `see the policies that name app/${app}: \`ztctl policy list\``,
      })
    }

    case 404: {
      return new ZtError('ZT_ERR_APP_OFF', `${error.reason ?? `the ${app} app is off on ${agent}`} (the controller's directory is ahead of the agent, or the agent has not applied it yet)`, {
        exit: ExitCode.notFound,
        suggestion: `check \`ztctl proxy-config apps ${agent}\` on its host; ${addMe}`,
      })
    }

    default: {
      return new ZtError(error.code, `cannot reach the ${app} app of agent ${agent}: ${error.message}`, {
        exit: error.status === undefined ? ExitCode.unreachable : ExitCode.failure,
        suggestion: `check that agent ${agent} runs and that its HBONE address is reachable from here (\`ztctl proxy-status\`)`,
      })
    }
  }
}

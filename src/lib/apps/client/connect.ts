// How a CLI reaches an agent's app: with its own identity (the context's, or -i FILE), it asks the
// controller's directory (GET /v1/apps) where the agent is and whether the app is on, then opens an
// HBONE CONNECT to the agent itself: mutual TLS with the mesh CA, the agent's SPIFFE ID pinned, the
// reserved app :authority (proxy/state/apps.ts). The agent admits the stream with its own allow list and
// policies, so the identity that reaches the shell or the file is the user's, end to end.
import type {ClientHttp2Stream} from 'node:http2'

import type {AppName} from '../../config/types.js'
import type {AppDirectory} from '../../controller/routes/apps.js'
import {ExitCode, ZtError} from '../../errors.js'
import type {Home} from '../../home/home.js'
import {type IdentityFile, readIdentityFile} from '../../identity/file.js'
import {HboneError, HbonePool} from '../../proxy/hbone/hbone-pool.js'
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

  if (!entry.hbone) {
    throw new ZtError('ZT_ERR_AGENT_UNREACHABLE', `agent "${agent}" accepts no direct connection (it is reached through hubs)`, {
      exit: ExitCode.unreachable,
      suggestion: 'run the command where an agent attached to the same hub is, or give the agent an --advertise address',
    })
  }

  return entry
}

/** A pool for this identity's app streams (one HTTP/2 session per agent, shared by its streams). */
export function appPool(client: MeshClient): HbonePool {
  const revoked = new Set(client.directory.revokedSerials.map((serial) => serial.toUpperCase()))
  return new HbonePool({connectTimeoutMs: CONNECT_TIMEOUT_MS, credentials: new Credentials(client.identity), isRevoked: (serial) => revoked.has(serial.toUpperCase()), responseTimeoutMs: CONNECT_TIMEOUT_MS})
}

/** Open APP's stream on AGENT; refusals become ZtErrors in the agent's words. */
export async function openAppStream(pool: HbonePool, client: MeshClient, agent: DirectoryAgent, app: AppName): Promise<ClientHttp2Stream> {
  try {
    const {stream} = await pool.open({address: agent.hbone, spiffe: agent.spiffe}, appAuthority(app), {forwarded: `host="${appService(app)}"`})
    return stream
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

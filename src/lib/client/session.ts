// What a command needs to talk to the controller: the context (or --context), its identity file,
// renewed first when past half-life, and a client on top of it.
import {ExitCode, ZtError} from '../errors.js'
import {currentContext, type Context} from '../home/contexts.js'
import type {Home} from '../home/home.js'
import {type IdentityFile, readIdentityFile, writeIdentityFile} from '../identity/file.js'
import {certInfo} from '../pki/cert-info.js'
import {ControllerClient} from './controller-client.js'
import {msUntilRenewal, renewIdentity} from './renew.js'

export interface SessionOptions {
  context?: string
  home: Home
  /** skip the half-life renewal (read-only probes such as `version`) */
  noRenew?: boolean
  timeoutMs?: number
}

export interface Session extends ControllerClient {
  readonly context: Context
  readonly identity: IdentityFile
}

/** What a locked-out admin runs: on the controller's host, with its data dir (known when this host wrote the context). */
export function recoveryCommand(context: Context): string {
  const dataDir = context.controllerDataDir ? ` --data-dir ${context.controllerDataDir}` : ' --data-dir DATA_DIR'
  return `ztctl controller admin${dataDir} --context-name ${context.name}`
}

export async function openSession(options: SessionOptions): Promise<Session> {
  const context = await currentContext(options.home, options.context)
  if (context.kind === 'kubernetes' && context.kubernetes) return openClusterSession(context, context.kubernetes, options.timeoutMs)
  const identity = await freshIdentity(await readIdentityFile(context.identity), {
    controller: context.controller, file: context.identity, noRenew: options.noRenew, timeoutMs: options.timeoutMs, what: `context "${context.name}"`,
    suggestion: `on the controller's host run \`${recoveryCommand(context)}\` (re-issues the admin identity), or ask another admin: \`ztctl identity create NAME --admin\`, then \`ztctl enroll NAME.jwt --context ${context.name}\``,
  })
  // The context's URL wins over the file's: contexts are what users edit and what the controller updates.
  const client = ControllerClient.fromIdentity({...identity, controller: context.controller}, options.timeoutMs)
  return Object.assign(client, {context, identity}) as Session
}

export interface FreshIdentityOptions {
  /** the controller to renew with (a context's URL wins over the file's) */
  controller?: string
  /** where IDENTITY lives: a renewed one is written back there */
  file: string
  noRenew?: boolean
  /** what to do once the certificate expired */
  suggestion: string
  timeoutMs?: number
  /** where the identity comes from, for the expiry message */
  what: string
}

/** IDENTITY, renewed first (and written back) when past half-life; a ZtError once its certificate expired. */
export async function freshIdentity(identity: IdentityFile, options: FreshIdentityOptions): Promise<IdentityFile> {
  const notAfter = certInfo(identity.cert).notAfter
  if (notAfter.getTime() <= Date.now()) {
    throw new ZtError('ZT_ERR_CERT_EXPIRED', `the certificate of identity "${identity.name}" (${options.what}) expired at ${notAfter.toISOString()}`, {
      exit: ExitCode.auth,
      suggestion: options.suggestion,
    })
  }

  if (options.noRenew || msUntilRenewal(identity) > 0) return identity
  const renewed = await renewIdentity({...identity, ...(options.controller && {controller: options.controller})}, {timeoutMs: options.timeoutMs})
  await writeIdentityFile(options.file, renewed)
  return renewed
}

/** A session with a controller in a cluster: through a port-forward, as the admin of Secret ztctl-admin (the leader keeps it fresh). */
async function openClusterSession(context: Context, target: NonNullable<Context['kubernetes']>, timeoutMs?: number): Promise<Session> {
  const {connectToClusterController} = await import('../kube/controller-context.js')
  const connection = await connectToClusterController(target, timeoutMs)
  const {client} = connection
  client.close = () => connection.close()
  return Object.assign(client, {context, identity: connection.identity}) as Session
}

// Context views for `ztctl context list|show`: the contexts file plus what the identity file (or, for a
// context of kind kubernetes, Secret ztctl-admin) says.
import path from 'node:path'

import {ExitCode, ZtError} from '../errors.js'
import {addContext as saveNewContext, type Context, currentContext, loadContexts} from '../home/contexts.js'
import type {Home} from '../home/home.js'
import {type IdentityFile, readIdentityFile} from '../identity/file.js'
import {certInfo} from '../pki/cert-info.js'

export interface ContextRow extends Context {
  current: boolean
}

export interface ContextDetails extends Context {
  certNotAfter?: string
  identityName?: string
  spiffe?: string
}

export async function listContexts(home: Home): Promise<ContextRow[]> {
  const file = await loadContexts(home)
  return file.contexts.map((context) => ({...context, current: context.name === file.current}))
}

export async function showContext(home: Home, override?: string): Promise<ContextDetails> {
  const context = await currentContext(home, override)
  const identity = await contextIdentity(context).catch(() => undefined)
  if (!identity) return context
  return {...context, certNotAfter: certInfo(identity.cert).notAfter.toISOString(), identityName: identity.name, spiffe: identity.spiffe}
}

/** `context add`: the identity file must be readable; the controller URL defaults to the one it names. */
export async function addContext(home: Home, input: {controller?: string; identity: string; name: string}, options: {makeCurrent?: boolean; replace?: boolean}): Promise<Context> {
  const file = path.resolve(input.identity)
  const identity = await readIdentityFile(file)
  const controller = (input.controller ?? identity.controller).replace(/\/+$/, '')
  if (!/^https:\/\/[^/\s]+$/.test(controller)) {
    throw new ZtError('ZT_ERR_USAGE', `--controller "${controller}" is not https://HOST:PORT`, {exit: ExitCode.usage, suggestion: 'e.g. --controller https://ctrl.example:15012'})
  }

  return saveNewContext(home, {controller, identity: file, name: input.name}, options)
}

async function contextIdentity(context: Context): Promise<IdentityFile> {
  if (context.kind !== 'kubernetes' || !context.kubernetes) return readIdentityFile(context.identity)
  const {readClusterAdminIdentity} = await import('../kube/controller-context.js')
  return readClusterAdminIdentity(context.kubernetes)
}

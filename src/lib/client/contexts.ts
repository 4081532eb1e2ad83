// Context views for `ztctl context list|show`: the contexts file plus what the identity file (or, for a
// context of kind kubernetes, Secret ztctl-admin) says.
import {type Context, currentContext, loadContexts} from '../home/contexts.js'
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

async function contextIdentity(context: Context): Promise<IdentityFile> {
  if (context.kind !== 'kubernetes' || !context.kubernetes) return readIdentityFile(context.identity)
  const {readClusterAdminIdentity} = await import('../kube/controller-context.js')
  return readClusterAdminIdentity(context.kubernetes)
}

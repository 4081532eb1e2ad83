// The dashboard as the CLI and the quickstart start it: for a context (the current one, or by name), acting
// as that context's admin identity.
import {currentContext} from '../home/contexts.js'
import type {Home} from '../home/home.js'
import {readIdentityFile} from '../identity/file.js'
import type {ControllerApi} from '../mesh/api.js'
import {certInfo} from '../pki/cert-info.js'
import {type Dashboard, type DashboardOptions, startDashboard} from './server.js'

export interface ContextDashboardOptions extends Pick<DashboardOptions, 'agentAdmins' | 'allowRemote' | 'intervalMs' | 'listen' | 'onError'> {
  api: ControllerApi
  /** a context name; default the current one */
  context?: string
  home: Home
}

export async function startDashboardForContext(options: ContextDashboardOptions): Promise<Dashboard> {
  const context = await currentContext(options.home, options.context)
  const identity = await readIdentityFile(context.identity)
  return startDashboard({
    ...options,
    context: {controller: context.controller, name: context.name},
    self: {certNotAfter: certInfo(identity.cert).notAfter.toISOString(), name: identity.name},
  })
}

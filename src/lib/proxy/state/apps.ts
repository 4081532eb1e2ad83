// The apps an agent hosts (terminal, file sharing, scripts) as the data plane sees them: each enabled app
// is a service `app/APP` hosted by the agent itself at a reserved :authority, so admission, policies,
// live re-checks, metrics and access logs treat an app stream like any other CONNECT (docs/hbone.md "Apps").
import {type AgentApp, APP_NAMES, type AppName, type ConfigSnapshot, type OutboundTunnel} from '../../config/types.js'
import type {HostPort} from '../address.js'

/** Reserved for apps: never resolvable (RFC 6761 .invalid), refused as a tunnel target. */
export const APP_AUTHORITY_SUFFIX = '.apps.ztctl.invalid'
export const APP_AUTHORITY_PORT = 15_008
export const APP_SERVICE_PREFIX = 'app/'

export const appService = (app: AppName): string => `${APP_SERVICE_PREFIX}${app}`
export const appAuthority = (app: AppName): string => `${app}${APP_AUTHORITY_SUFFIX}:${APP_AUTHORITY_PORT}`
export const isAppService = (service: string): boolean => service.startsWith(APP_SERVICE_PREFIX)

/** Whether HOST lies in the apps' reserved name space (a tunnel target there is refused). */
export function isReservedAppHost(host: string): boolean {
  const lower = host.toLowerCase()
  return lower === APP_AUTHORITY_SUFFIX.slice(1) || lower.endsWith(APP_AUTHORITY_SUFFIX)
}

/** The app a CONNECT target names, or undefined when it is an ordinary target. */
export function appOfTarget(target: HostPort): AppName | undefined {
  if (target.port !== APP_AUTHORITY_PORT) return undefined
  const host = target.host.toLowerCase()
  if (!host.endsWith(APP_AUTHORITY_SUFFIX)) return undefined
  const name = host.slice(0, -APP_AUTHORITY_SUFFIX.length)
  return (APP_NAMES as readonly string[]).includes(name) ? (name as AppName) : undefined
}

/** The enabled apps of AGENT, by name. */
export function enabledApps(snapshot: ConfigSnapshot, agent: string): Map<AppName, AgentApp> {
  const apps = new Map<AppName, AgentApp>()
  for (const app of Object.values(snapshot.app ?? {})) {
    if (app.agent === agent && app.enabled && (APP_NAMES as readonly string[]).includes(app.app)) apps.set(app.app, app)
  }

  return apps
}

/** AGENT's enabled apps as the tunnels it hosts: the allow list is the app's. */
export function appTunnels(apps: Map<AppName, AgentApp>): OutboundTunnel[] {
  return [...apps.values()].map((app) => ({
    agent: app.agent,
    allow: app.allow,
    service: appService(app.app),
    targets: [{host: `${app.app}${APP_AUTHORITY_SUFFIX}`, port: APP_AUTHORITY_PORT}],
  }))
}

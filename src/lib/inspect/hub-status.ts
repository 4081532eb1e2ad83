// `ztctl hub status`: a hub's own view (its /hub_status): the agents attached, their standby streams,
// relays and round trips. The hub is found like an agent: --admin, its name (ready file), or the default.
import {ExitCode, ZtError} from '../errors.js'
import type {Home} from '../home/home.js'
import type {HubDump} from '../proxy/daemon/hub.js'
import {fetchAdmin, resolveAdminAddress} from './proxy-config.js'

export async function fetchHubStatus(source: {admin?: string; hub?: string; home: Home}): Promise<HubDump> {
  const admin = await resolveAdminAddress({admin: source.admin, agent: source.hub, home: source.home}, 'hubs')
  const text = await fetchAdmin(admin, '/hub_status', 'hub')
  try {
    const dump = JSON.parse(text) as HubDump
    if (Array.isArray(dump.agents) && typeof dump.hub?.name === 'string') return dump
  } catch {
    // reported below
  }

  throw new ZtError('ZT_ERR_BAD_DUMP', `${admin} did not answer /hub_status like a hub`, {exit: ExitCode.unreachable, suggestion: 'is that the admin address of `ztctl hub run` (default 127.0.0.1:15010)?'})
}

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags} from '../../lib/cli/flag-groups.js'
import {listProxies} from '../../lib/mesh/proxy.js'

export default class ProxyList extends BaseCommand<typeof ProxyList> {
  static override description = 'Every proxy listener (where clients connect) and every exit (which targets it dials, which it never dials, who may use it).'
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> -o json']
  static override flags = {...controllerFlags}
  static override summary = 'List proxy listeners and exits'

  async run() {
    const result = await this.withController((api) => listProxies(api))
    return this.render(result, () => {
      const listeners = result.listeners.length === 0
        ? 'No proxy listener. Open one with `ztctl proxy open --agent AGENT --listen 127.0.0.1:1080`.'
        : this.table(result.listeners, [
            {header: 'LISTENER', value: (l) => l.agent},
            {header: 'LISTEN', value: (l) => l.listen},
            {header: 'USERS', value: (l) => l.users.map((user) => user.name).join(', ') || '(no authentication)'},
          ])
      const exits = result.exits.length === 0
        ? "No exit: no target is served. Make one with `ztctl proxy config --agent AGENT --add-target '*.svc.cluster.local'`."
        : this.table(result.exits, [
            {header: 'EXIT', value: (e) => e.agent},
            {header: 'TARGETS', value: (e) => e.targets.join(', ')},
            {header: 'EXCLUSIONS', value: (e) => e.exclusions.join(', ')},
            {header: 'ALLOW', value: (e) => e.allow.join(', ') || '(any)'},
          ])
      return `${listeners}\n\n${exits}`
    })
  }
}

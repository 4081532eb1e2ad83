import {Flags} from '@oclif/core'
import {readFile} from 'node:fs/promises'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags, dryRunFlags, waitFlags} from '../../lib/cli/flag-groups.js'
import {dryRunText} from '../../lib/cli/render.js'
import {describeOutcome} from '../../lib/mesh/rollout.js'
import {ExitCode, ZtError} from '../../lib/errors.js'
import {openProxy} from '../../lib/mesh/proxy.js'

export default class ProxyOpen extends BaseCommand<typeof ProxyOpen> {
  static override description = `AGENT listens on one port for SOCKS5 (CONNECT; domain names are resolved at the exit; RFC 1929 username/password with --user) and HTTP proxy requests (CONNECT, and absolute http:// URLs), told apart by the first byte. Each target goes to the exit that serves it most specifically (\`ztctl proxy config\`), over HBONE; a target no exit serves is refused in the client's protocol (SOCKS 0x02, HTTP 403) with the reason.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> --agent laptop --listen 127.0.0.1:1080',
    'curl --socks5-hostname 127.0.0.1:1080 http://web.default.svc.cluster.local/',
    'curl -x http://127.0.0.1:1080 http://web.default.svc.cluster.local/',
    'printf s3cret | <%= config.bin %> <%= command.id %> --agent laptop --listen 1080 --user alice --password-file -',
  ]
  static override flags = {
    ...controllerFlags,
    ...waitFlags,
    ...dryRunFlags,
    agent: Flags.string({description: 'identity name of the agent that listens', required: true}),
    listen: Flags.string({description: '[IP:]PORT to listen on (IP defaults to 127.0.0.1)', required: true}),
    'password-file': Flags.string({dependsOn: ['user'], description: 'file holding the password of --user (- for standard input); only a salted scrypt hash leaves this machine', env: 'ZTCTL_PROXY_PASSWORD_FILE'}),
    user: Flags.string({dependsOn: ['password-file'], description: 'require this username (SOCKS5 RFC 1929, HTTP Proxy-Authorization Basic)'}),
  }
  static override summary = 'Open a SOCKS5/HTTP proxy listener on an agent'

  async run() {
    const {agent, listen, user} = this.flags
    const users = user ? [{name: user, password: await this.password()}] : []
    const result = await this.withController((api) => openProxy(api, {agent, listen, users}, this.changeOptions))
    return this.render(result, () => result.dryRun ? dryRunText(result.dryRun) : `proxy listener opened on ${agent} at ${result.listener.listen} (SOCKS5 and HTTP${users.length > 0 ? `, user ${user}` : ''}; ${describeOutcome(result)})`)
  }

  private async password(): Promise<string> {
    const file = this.flags['password-file']!
    try {
      const text = file === '-' ? await readStdin() : await readFile(file, 'utf8')
      return text.replace(/\r?\n$/, '')
    } catch (error) {
      throw new ZtError('ZT_ERR_NOT_FOUND', `cannot read the password from ${file}: ${(error as Error).message}`, {exit: ExitCode.notFound, suggestion: 'pass a readable file, or - and the password on standard input'})
    }
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

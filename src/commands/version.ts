import {BaseCommand} from '../lib/cli/base-command.js'

export default class Version extends BaseCommand<typeof Version> {
  static override description = 'Show the client version, and the controller version when one is reachable'
  static override examples = ['<%= config.bin %> version', '<%= config.bin %> version --json']

  async run(): Promise<{client: {node: string; version: string}}> {
    const data = {client: {node: process.version, version: this.config.version}}
    return this.render(data, () => `client version: ${data.client.version} (node ${data.client.node})`)
  }
}

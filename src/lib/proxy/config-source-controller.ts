// The controller's configuration stream as a ConfigSource (POST /v1/config/stream, NDJSON both ways).
import type {IdentityFile} from '../identity/file.js'
import {ZtError} from '../errors.js'
import type {ApplyConfig, ConfigSource, ConfigSourceEvents, ConfigSourceStatus} from './config-source.js'

export class ControllerConfigSource implements ConfigSource {
  readonly kind = 'controller'

  constructor(private readonly identity: IdentityFile) {}

  async start(_apply: ApplyConfig, _events: ConfigSourceEvents): Promise<void> {
    throw new ZtError('ZT_ERR_NOT_IMPLEMENTED', `the controller stream (${this.identity.controller}) is not wired yet`, {suggestion: 'use --config FILE'})
  }

  status(): ConfigSourceStatus {
    return {connected: false, source: this.identity.controller}
  }

  async close(): Promise<void> {}
}

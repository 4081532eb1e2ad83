// The controller's configuration stream as a ConfigSource: POST /v1/config/stream (NDJSON both ways,
// via src/lib/client/config-stream.ts). Each snapshot/delta is validated, then applied; a failure nacks
// it. While the controller is unreachable the agent keeps serving its last configuration and the
// subscription reconnects with bounded backoff, resuming from the last applied version.
import {subscribeConfig, type ConfigSubscription} from '../../client/config-stream.js'
import type {AgentMessage} from '../../config/types.js'
import type {IdentityFile} from '../../identity/file.js'
import type {ApplyConfig, ConfigSource, ConfigSourceEvents, ConfigSourceStatus} from './config-source.js'
import {validateSnapshot} from './state.js'

export class ControllerConfigSource implements ConfigSource {
  readonly kind = 'controller'
  private subscription?: ConfigSubscription
  private connected = false
  private lastError?: string

  constructor(private readonly identity: IdentityFile) {}

  async start(apply: ApplyConfig, events: ConfigSourceEvents): Promise<void> {
    this.subscription = subscribeConfig({
      agent: events.agent,
      hbone: events.hbone,
      identity: events.identity,
      maxBackoffMs: 15_000,
      minBackoffMs: 250,
      onConfig: async (snapshot, version) => {
        try {
          await apply({snapshot: validateSnapshot(snapshot), version})
          this.lastError = undefined
        } catch (error) {
          this.lastError = (error as Error).message
          events.onError(this.lastError)
          throw error
        }
      },
      onState: (state, error) => {
        const connected = state === 'connected'
        if (error) this.lastError = (error as Error).message ?? String(error)
        if (connected !== this.connected || error) {
          this.connected = connected
          events.onState?.(state, error ? `controller stream ${this.identity.controller}: ${this.lastError}` : undefined)
        }
      },
    })
  }

  report(message: AgentMessage): void {
    this.subscription?.send(message)
  }

  status(): ConfigSourceStatus {
    return {connected: this.connected, lastError: this.lastError, source: this.identity.controller, version: this.subscription?.version}
  }

  async close(): Promise<void> {
    this.subscription?.close()
  }
}

// The controller's configuration stream as a ConfigSource: POST /v1/config/stream (NDJSON both ways,
// via src/lib/client/config-stream.ts). Each snapshot/delta is checked resource by resource and applied;
// its ack carries the status of every resource the agent acts on or dropped as invalid. While the controller is unreachable the agent keeps serving its last configuration and the
// subscription reconnects with bounded backoff, resuming from the last applied version.
import {subscribeConfig, type ConfigSubscription} from '../../client/config-stream.js'
import type {AgentMessage, ResourceStatus} from '../../config/types.js'
import type {IdentityFile} from '../../identity/file.js'
import type {ApplyConfig, ConfigSource, ConfigSourceEvents, ConfigSourceStatus} from './config-source.js'
import {checkSnapshot} from './state.js'

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
      software: events.software,
      onConfig: async (snapshot, version) => {
        try {
          const {invalid, snapshot: valid} = checkSnapshot(snapshot)
          const statuses = [...invalid, ...(await apply({snapshot: valid, version}))]
          const failed = statuses.filter((status) => status.state === 'error')
          this.lastError = failed.length === 0 ? undefined : failed.map((status) => `${status.kind} ${status.key}: ${status.reason}`).join('; ')
          return statuses
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

  report(resources: ResourceStatus[]): void {
    this.subscription?.report(resources)
  }

  send(message: AgentMessage): void {
    this.subscription?.send(message)
  }

  status(): ConfigSourceStatus {
    return {connected: this.connected, lastError: this.lastError, source: this.identity.controller, version: this.subscription?.version}
  }

  async close(): Promise<void> {
    this.subscription?.close()
  }
}

// The native data path's TLS contexts (client and server), built from the agent's credentials and
// rebuilt on every renewal: new handshakes use the new certificate, established sessions keep theirs.
import {EventEmitter} from 'node:events'

import type {HboneEngine} from './hbone-engine.js'
import type {Credentials} from './tls.js'

export class NativeContexts extends EventEmitter {
  client!: number
  server!: number

  constructor(private readonly engine: HboneEngine, credentials: Credentials) {
    super()
    this.build(credentials)
    credentials.on('update', () => {
      const previous = [this.client, this.server]
      this.build(credentials)
      this.emit('update')
      // Sessions hold their own reference to the old context: freeing ours is safe.
      for (const id of previous) engine.native.contextFree(id)
    })
  }

  free(): void {
    this.engine.native.contextFree(this.client)
    this.engine.native.contextFree(this.server)
  }

  private build(credentials: Credentials): void {
    const {ca, cert, key} = credentials.identity
    this.client = this.engine.native.contextCreate(cert, key, ca, false)
    this.server = this.engine.native.contextCreate(cert, key, ca, true)
  }
}

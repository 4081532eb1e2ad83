// The connection registry: every proxied connection from establishment to close, with what
// authorization and inspection need (identities, service, addresses). Closing by predicate is how
// policy changes and revocations reach live connections; `drained()` is how shutdown waits.
import {EventEmitter} from 'node:events'

import type {ResponseFlag} from './metrics.js'

/** Why the agent closed a live connection: the access log's error text and the metric flag. */
export interface CloseReason {
  flag: ResponseFlag
  message: string
}

/** relay: a hub's (a source's stream spliced to a destination's) */
export type Direction = 'inbound' | 'outbound' | 'relay'

export interface ConnectionRecord {
  /** the hosting agent (outbound: the agent we tunnel to; inbound: ourselves) */
  destinationAgent?: string
  /** outbound: the HBONE address we dialled; inbound: our HBONE address the peer connected to */
  destinationAddress: string
  /** the peer certificate serial (inbound: client cert; outbound: server cert) */
  peerSerial?: string
  destinationSpiffe?: string
  direction: Direction
  /** the CONNECT :authority, i.e. the target host:port */
  hboneTarget: string
  id: number
  service: string
  sourceAddress: string
  sourceSpiffe?: string
  startedAt: number
}

export interface ConnectionSnapshot extends Omit<ConnectionRecord, 'startedAt'> {
  startedAt: string
}

interface Entry {
  close: (reason: CloseReason) => void
  record: ConnectionRecord
}

export class ConnectionRegistry extends EventEmitter {
  private readonly entries = new Map<number, Entry>()
  private nextId = 1

  get size(): number {
    return this.entries.size
  }

  newId(): number {
    return this.nextId++
  }

  /** Track a live connection; `close` tears it down and must eventually call `remove`. */
  add(record: ConnectionRecord, close: (reason: CloseReason) => void): void {
    this.entries.set(record.id, {close, record})
  }

  remove(id: number): void {
    if (this.entries.delete(id) && this.entries.size === 0) this.emit('empty')
  }

  /** Close every connection the predicate selects; returns how many. */
  closeWhere(predicate: (record: ConnectionRecord) => boolean, reason: CloseReason): number {
    let count = 0
    for (const entry of [...this.entries.values()]) {
      if (predicate(entry.record)) {
        count++
        entry.close(reason)
      }
    }

    return count
  }

  /** How many live connections the predicate selects. */
  count(predicate: (record: ConnectionRecord) => boolean): number {
    let count = 0
    for (const {record} of this.entries.values()) if (predicate(record)) count++
    return count
  }

  list(): ConnectionSnapshot[] {
    return [...this.entries.values()].map(({record}) => ({...record, startedAt: new Date(record.startedAt).toISOString()}))
  }

  /** Resolves true once no connection is left, false when the deadline passes first. */
  async drained(deadlineMs: number): Promise<boolean> {
    if (this.entries.size === 0) return true
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.off('empty', onEmpty)
        resolve(false)
      }, deadlineMs)
      timer.unref()
      const onEmpty = (): void => {
        clearTimeout(timer)
        resolve(true)
      }

      this.once('empty', onEmpty)
    })
  }
}

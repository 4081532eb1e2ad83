// Carrying one accepted connection over HBONE, whichever listener took it (an inbound tunnel, the proxy,
// a UDP flow, an in-pod socket): the endpoints in order (weighted random, or the proxy's exits), each
// by its routes (its HBONE address, then a hub), failing over on connect failures, with ztunnel's
// request headers, and the connection accounted once established or refused.
import {randomFillSync} from 'node:crypto'

import type {HboneError} from '../hbone/hbone-pool.js'
import {type HboneDestination, VIA_HUB} from '../hbone/pool-sessions.js'
import type {Logger} from '../observe/log.js'
import type {TrafficLabels} from '../observe/metrics.js'
import type {ConnectionRecord} from '../observe/registry.js'
import type {Endpoint, MeshState} from '../state/state.js'
import type {ConnectionTracker} from './connection.js'

/** Endpoints tried per connection before giving up. */
export const MAX_CONNECT_ATTEMPTS = 3

export interface CarryOptions {
  /** whether a hub is connected now (a failed direct dial may then go through one) */
  hubConnected?: () => boolean
  logger: () => Logger
  sourceSpiffe: () => string
  state: () => MeshState
  tracker: ConnectionTracker
}

/**
 * The application side of one tunnel, whichever data path holds its socket: `open` sends the CONNECT
 * (resolving once answered 200, or undefined when the client already left), `track` starts the relay
 * and its accounting, `destroy` gives up (FAILURE: the last attempt's error, or why there was none).
 */
export interface TunnelClient {
  destroy(failure?: HboneError | {message: string; noEndpoints: true}): void
  open(destination: HboneDestination, target: string, headers: Record<string, string>): Promise<undefined | {peerSerial?: string; track(record: ConnectionRecord, labels: TrafficLabels): void}>
  /** `ip:port` of the application */
  readonly source: string
}

/** Endpoints in a weighted-random order without repetition (the first is the weighted pick). */
export function weightedOrder<T extends {weight: number}>(endpoints: readonly T[], random: () => number = Math.random): T[] {
  if (endpoints.length < 2) return [...endpoints]
  const remaining = [...endpoints]
  const order: T[] = []
  while (remaining.length > 0) {
    const total = remaining.reduce((sum, endpoint) => sum + endpoint.weight, 0)
    let pick = random() * total
    let index = remaining.findIndex((endpoint) => (pick -= endpoint.weight) < 0)
    if (index < 0) index = remaining.length - 1
    order.push(...remaining.splice(index, 1))
  }

  return order
}

/**
 * Carry one accepted connection to an endpoint of SERVICE over HBONE (weighted pick, failover on connect
 * failures). Also used by the in-pod data path for connections to a mesh service address, with the
 * pod's pool and identity (SOURCE_WORKLOAD: the pod's name in the metrics).
 */
export function carryToService(client: TunnelClient, service: string, options: CarryOptions, sourceWorkload?: string): void {
  const endpoints = weightedOrder(options.state().endpoints(service)).slice(0, MAX_CONNECT_ATTEMPTS)
  carryToEndpoints(client, service, endpoints, options, {noEndpoints: `no healthy upstream: ${service} has no endpoints (no agent hosts it, or its agent has not registered)`, sourceWorkload})
}

/** Carry one connection to the first of ENDPOINTS that answers 200 (the proxy: its exits for one target). */
export function carryToEndpoints(client: TunnelClient, service: string, endpoints: readonly Endpoint[], options: CarryOptions, context: {noEndpoints: string; sourceWorkload?: string}): void {
  const {sourceWorkload} = context
  const state = options.state()
  const sourceSpiffe = options.sourceSpiffe()
  // Every field spelled out from the start: the objects keep one shape instead of growing per endpoint.
  const record: ConnectionRecord = {
    destinationAddress: '',
    destinationAgent: undefined,
    destinationSpiffe: undefined,
    direction: 'outbound',
    hboneTarget: '',
    id: options.tracker.newId(),
    peerSerial: undefined,
    service,
    sourceAddress: client.source,
    sourceSpiffe,
    startedAt: Date.now(),
  }
  const labels: TrafficLabels = {
    destinationPrincipal: undefined,
    destinationService: service,
    destinationWorkload: undefined,
    reporter: 'source',
    sourcePrincipal: sourceSpiffe,
    sourceWorkload: sourceWorkload ?? state.self.name,
  }
  if (endpoints.length === 0) {
    client.destroy({message: context.noEndpoints, noEndpoints: true})
    options.tracker.refused(record, labels, {flag: 'CONNECT', message: context.noEndpoints})
    return
  }

  const attempt = async (): Promise<void> => {
    let lastError: HboneError | undefined
    for (const endpoint of endpoints) {
      record.destinationAgent = endpoint.agent
      record.destinationSpiffe = endpoint.spiffe
      record.hboneTarget = endpoint.target
      labels.destinationPrincipal = endpoint.spiffe
      labels.destinationWorkload = endpoint.agent
      for (const destination of routesTo(endpoint, options.hubConnected?.() ?? false)) {
        record.destinationAddress = destination.address
        try {
          const opened = await client.open(destination, endpoint.target, requestHeaders(record, service))
          if (!opened) return // the client left meanwhile
          record.peerSerial = opened.peerSerial
          opened.track(record, labels)
          return
        } catch (error) {
          lastError = error as HboneError
          options.logger().debug({endpoint: endpoint.target, agent: endpoint.agent, via: destination.via, error: lastError.message}, 'endpoint failed')
          if (!lastError.retryable) break
        }
      }

      if (lastError && !lastError.retryable) break
    }

    client.destroy(lastError)
    options.tracker.refused(record, labels, {flag: lastError?.flag ?? 'CONNECT', message: lastError?.message ?? 'connection failed'})
  }

  void attempt()
}

/** How to reach ENDPOINT's agent: its HBONE address, then (or only, without one) through a hub. */
export function routesTo(endpoint: {agent: string; hbone: string; spiffe: string}, hubConnected: boolean): HboneDestination[] {
  const viaHub: HboneDestination = {address: VIA_HUB, agent: endpoint.agent, spiffe: endpoint.spiffe, via: 'hub'}
  if (!endpoint.hbone) return [viaHub]
  const direct: HboneDestination = {address: endpoint.hbone, agent: endpoint.agent, spiffe: endpoint.spiffe}
  return hubConnected ? [direct, viaHub] : [direct]
}

// Trace ids come from a pool refilled in bulk: one getrandom call per 170 connections, not one each.
const randomPool = Buffer.alloc(4096)
let randomOffset = randomPool.length

function randomHex(bytes: number): string {
  if (randomOffset + bytes > randomPool.length) {
    randomFillSync(randomPool)
    randomOffset = 0
  }

  randomOffset += bytes
  return randomPool.toString('hex', randomOffset - bytes, randomOffset)
}

/** ztunnel's CONNECT headers: who the client is, which service, and a fresh W3C trace context. */
function requestHeaders(record: ConnectionRecord, service: string): Record<string, string> {
  const trace = randomHex(24)
  return {
    baggage: `service.name=${service}`,
    forwarded: `for="${record.sourceAddress}";host="${service}"`,
    traceparent: `00-${trace.slice(0, 32)}-${trace.slice(32, 48)}-00`,
  }
}

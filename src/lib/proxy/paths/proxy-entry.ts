// The proxy listener (`ztctl proxy open`, ZTM's zt-proxy entry): one port for SOCKS5 and HTTP proxying.
// The addon accepts each connection and hands its first bytes to the handshake (proxy-handshake.ts);
// the target then goes to the exits that serve it most specifically (state/exits.ts), as an HBONE
// CONNECT (directly, or through a hub), with the client's handshake leftovers first and the protocol's
// success reply written only once the exit answered 200. Refusals answer in the client's protocol
// (SOCKS 0x02/0x04/0x05, HTTP 403/502) with the reason in words where the protocol has room for it.
// Bounded: handshakes at once, bytes and time per handshake. Native data path only.
import type {ProxyListener} from '../../config/types.js'
import {describeSystemError} from '../../errors.js'
import {verifyPassword} from '../../pki/password.js'
import {formatHostPort, parseHostPort, resolveHost} from '../address.js'
import type {HboneEngine} from '../hbone/hbone-engine.js'
import type {NativeHbonePool} from '../hbone/native-pool.js'
import {PROXY_SERVICE} from '../state/state.js'
import {type HandshakeStep, httpReply, MAX_HANDSHAKE_BYTES, ProxyHandshake, type ProxyProtocol, SOCKS_REPLY, socksReply} from './proxy-handshake.js'
import {type CarryOptions, carryToEndpoints, type TunnelClient} from './carry.js'

/** Handshakes in progress at once; more connections are closed at once. */
export const MAX_HANDSHAKES = 1024
/** A client must finish its handshake within this. */
export const HANDSHAKE_TIMEOUT_MS = 10_000

export interface ProxyEntryOptions extends CarryOptions {
  engine: HboneEngine
  pool: NativeHbonePool
}

export interface ProxyListenerInfo {
  /** the bound address */
  address?: string
  error?: string
  listen: string
  users: number
}

export class ProxyEntry {
  private bound?: {close(): void; id: number}
  private listener?: ProxyListener
  private info?: ProxyListenerInfo
  private handshakes = 0

  constructor(private readonly options: ProxyEntryOptions) {}

  /** Bind, re-bind or close the listener to match LISTENER; the bind failure, if any. */
  async apply(listener: ProxyListener | undefined): Promise<string | undefined> {
    if (this.listener && (!listener || listener.listen !== this.listener.listen)) this.close()
    this.listener = listener
    if (!listener) return undefined
    if (this.bound) {
      this.info = {...this.info!, users: listener.users.length}
      return undefined
    }

    const address = parseHostPort(listener.listen, '127.0.0.1')!
    const {engine, logger} = this.options
    try {
      const host = await resolveHost(address.host)
      const {id, port} = engine.listenPlain(host, address.port, (tunnelId, remote) => this.onAccept(tunnelId, remote))
      this.bound = {close: () => engine.closeListener(id), id}
      this.info = {address: formatHostPort({host, port}), listen: listener.listen, users: listener.users.length}
      logger().info({address: this.info.address, component: 'proxy', users: listener.users.length}, 'listener established')
      return undefined
    } catch (error) {
      const message = `cannot listen on ${listener.listen} for the proxy: ${describeSystemError(error)}`
      this.info = {error: message, listen: listener.listen, users: listener.users.length}
      logger().error({component: 'proxy'}, message)
      return message
    }
  }

  status(): ProxyListenerInfo | undefined {
    return this.info && {...this.info}
  }

  /** Stop accepting; open connections continue. */
  close(): void {
    this.bound?.close()
    this.bound = undefined
    this.info = undefined
  }

  private onAccept(tunnelId: number, remote: string): void {
    const {engine, logger} = this.options
    const listener = this.listener
    if (!listener || this.handshakes >= MAX_HANDSHAKES) {
      engine.native.abort(tunnelId, 'too many proxy handshakes at once')
      return
    }

    this.handshakes++
    const handshake = new ProxyHandshake({auth: listener.users.length > 0})
    let done = false
    /** the request once parsed: what the client sends before its stream opens joins its prefix */
    let connecting: Extract<HandshakeStep, {kind: 'connect'}> | undefined
    const finish = (): void => {
      if (done) return
      done = true
      this.handshakes--
      clearTimeout(timer)
    }

    const give = (reason: string, reply?: Buffer): void => {
      finish()
      logger().debug({component: 'proxy', remote, reason}, 'proxy handshake refused')
      engine.native.finish(tunnelId, reply)
    }

    const timer = setTimeout(() => give(`no complete handshake within ${HANDSHAKE_TIMEOUT_MS / 1000} s`), HANDSHAKE_TIMEOUT_MS)
    timer.unref()
    const act = (step: HandshakeStep): void => {
      if (done) return
      if (step.kind === 'fail') {
        give(step.reason, step.send)
        return
      }

      if (step.send && !engine.native.write(tunnelId, step.send)) {
        finish()
        engine.native.abort(tunnelId, 'the client left')
        return
      }

      if (step.kind === 'auth') {
        const user = listener.users.find((candidate) => candidate.name === step.user)
        void (user ? verifyPassword(user.passwordHash, step.password) : Promise.resolve(false)).then((ok) => act(handshake.authenticated(ok)))
      } else if (step.kind === 'connect') {
        finish()
        connecting = step
        this.connect(tunnelId, remote, step)
      }
    }

    engine.watchTunnel(tunnelId, {
      data: (count, bytes) => {
        if (count < 0) {
          finish()
          engine.native.abort(tunnelId, 'the client left during its handshake')
        } else if (connecting && bytes) {
          // A client that did not wait for the reply (pipelined data, a request body): the addon reads
          // until open() (at most the peek budget); those bytes go on the stream after the prefix.
          connecting.prefix = Buffer.concat([connecting.prefix, bytes])
        } else if (bytes) {
          act(handshake.push(bytes))
        }
      },
    })
    engine.native.peek(tunnelId, MAX_HANDSHAKE_BYTES + 1)
  }

  private connect(tunnelId: number, remote: string, request: Extract<HandshakeStep, {kind: 'connect'}>): void {
    const {engine, pool, tracker} = this.options
    const target = formatHostPort({host: request.host, port: request.port})
    const endpoints = this.options.state().exitEndpoints(request.host, target)
    const client: TunnelClient = {
      destroy: (failure) => engine.native.finish(tunnelId, failureReply(request.protocol, target, failure)),
      async open(destination, authority, headers) {
        const opened = await pool.open(tunnelId, destination, authority, Object.entries({...headers, forwarded: `for="${remote}";host="${PROXY_SERVICE}"`}).flat(), request)
        return {
          peerSerial: opened.peerSerial,
          track(record, labels) {
            const close = tracker.opened(record, labels, () => engine.native.abort(tunnelId, 'closed by the agent'))
            opened.onClosed((fromPlain, toPlain, error) => close({fromPlain, toPlain}, error))
          },
        }
      },
      source: remote,
    }
    carryToEndpoints(client, PROXY_SERVICE, endpoints, this.options, {noEndpoints: `no exit serves ${target} (see \`ztctl proxy list\`; add it with \`ztctl proxy config --agent EXIT --add-target …\`)`})
  }
}

/** The client's protocol's own refusal for FAILURE, with the reason in words where it has room. */
export function failureReply(protocol: ProxyProtocol, target: string, failure: Parameters<TunnelClient['destroy']>[0]): Buffer {
  const reason = failure?.message ?? `cannot reach ${target}`
  const status = failure && 'status' in failure ? failure.status : undefined
  const refused = !failure || 'noEndpoints' in failure || status === 400 || status === 401
  if (protocol === 'socks5') {
    if (refused) return socksReply(SOCKS_REPLY.notAllowed)
    if (status === 503) return socksReply(/refused/i.test(reason) ? SOCKS_REPLY.connectionRefused : SOCKS_REPLY.hostUnreachable)
    return socksReply(SOCKS_REPLY.general)
  }

  return refused ? httpReply(403, 'Forbidden', `ztctl proxy: ${target} refused: ${reason}`) : httpReply(502, 'Bad Gateway', `ztctl proxy: cannot reach ${target}: ${reason}`)
}


// The byte path of every tunnel: a plain TCP socket joined to an HTTP/2 CONNECT stream. Native pipes
// only (no per-chunk JS); FIN ↔ END_STREAM both ways so half-close survives; RST_STREAM only on errors
// or after a linger, never in bulk (nghttp2's rapid-reset guard GOAWAYs a session that resets a lot).
import type {ClientHttp2Session, Http2Session, ServerHttp2Session} from 'node:http2'
import type {Http2Stream} from 'node:http2'
import type {Socket} from 'node:net'

import {HBONE_BOUNDS} from '../../http2/server-bounds.js'

/** HTTP/2 tuning (docs/hbone.md "Flow control"): ztunnel's windows; Node needs WINDOW_UPDATE for the connection window. */
export const H2_STREAM_WINDOW = 4 * 1024 * 1024
export const H2_CONNECTION_WINDOW = 16 * 1024 * 1024
/** nghttp2's outstanding-data budget per session, in MB (Node's default 10 is tight for 100 busy streams); the server's bound too. */
export const H2_MAX_SESSION_MEMORY_MB = HBONE_BOUNDS.maxSessionMemoryMb
/** The largest DATA frame we accept (ztunnel's 1 MiB): the peer's frames then follow our TLS records instead of straddling them. */
export const H2_MAX_FRAME_SIZE = 1024 * 1024
export const H2_SETTINGS = {enablePush: false, initialWindowSize: H2_STREAM_WINDOW, maxFrameSize: H2_MAX_FRAME_SIZE}
/** How long a tunnel may stay half-open after one side fully closed before we reset it. */
export const LINGER_MS = 500
const NGHTTP2_NO_ERROR = 0
const NGHTTP2_CANCEL = 8

/** Raise the connection-level receive window (SETTINGS cannot: only WINDOW_UPDATE on stream 0 does). */
export function raiseConnectionWindow(session: Http2Session): void {
  const raise = (): void => {
    if (!session.destroyed) session.setLocalWindowSize(H2_CONNECTION_WINDOW)
  }

  if (session.connecting) session.once('connect', raise)
  else raise()
}

/** PING every interval; a PING unanswered within the timeout destroys the session (a dead peer). */
export function keepalive(session: ClientHttp2Session | ServerHttp2Session, intervalMs: number, timeoutMs: number): void {
  const timer = setInterval(() => {
    if (session.destroyed || session.closed) return
    const deadline = setTimeout(() => session.destroy(new Error(`no PING answer within ${timeoutMs} ms`)), timeoutMs)
    deadline.unref()
    const sent = session.ping(() => clearTimeout(deadline))
    if (!sent) clearTimeout(deadline)
  }, intervalMs)
  timer.unref()
  session.once('close', () => clearInterval(timer))
}

export interface Relay {
  /** Tear both sides down now (policy change, revocation, drain deadline). */
  abort(): void
}

/**
 * Join SOCKET and STREAM until both are closed, then call onClose once. The socket must have been
 * created with allowHalfOpen so a FIN in one direction does not end the other.
 */
export function relay(socket: Socket, stream: Http2Stream, onClose: (error?: Error) => void): Relay {
  let firstError: Error | undefined
  let open = 2
  let linger: NodeJS.Timeout | undefined
  const done = (): void => {
    if (--open > 0) return
    if (linger) clearTimeout(linger)
    onClose(firstError)
  }

  const startLinger = (action: () => void): void => {
    if (linger) return
    linger = setTimeout(action, LINGER_MS)
    linger.unref()
  }

  const cancelStream = (): void => {
    if (!stream.closed) stream.close(NGHTTP2_CANCEL)
  }

  socket.on('error', (error) => {
    firstError ??= error
    cancelStream()
  })
  stream.on('error', (error) => {
    firstError ??= error
    socket.destroy()
  })
  // 'close' fires once: `on` spares the once-wrapper each tunnel would otherwise keep alive.
  socket.on('close', () => {
    // The socket closed cleanly (FIN both ways): once our END_STREAM is flushed the stream should
    // close by itself; if the peer never finishes, reset after a linger.
    if (!stream.closed) {
      if (firstError || stream.writableFinished) startLinger(cancelStream)
      else stream.once('finish', () => startLinger(cancelStream))
    }

    done()
  })
  stream.on('close', () => {
    if (!socket.destroyed) {
      const reset = stream.rstCode !== undefined && stream.rstCode !== NGHTTP2_NO_ERROR
      // A reset stream resets the TCP side (RST, as ztunnel does). A cleanly closed one already ended the socket's write side;
      // the socket closes by itself once its buffered bytes are out, unless its reader never finishes.
      if (reset) resetSocket(socket)
      else if (!socket.readableEnded) startLinger(() => socket.destroy())
    }

    done()
  })
  socket.pipe(stream)
  stream.pipe(socket)
  return {
    abort() {
      firstError ??= new Error('aborted')
      resetSocket(socket)
      cancelStream()
    },
  }
}

/**
 * Close with a TCP RST, as ztunnel does on a reset. After our FIN (shutdown) the kernel refuses the
 * RST (EINVAL) and Node then never emits 'close'; a plain destroy is the right ending there.
 */
function resetSocket(socket: Socket): void {
  if (socket.destroyed) return
  if (socket.writableEnded || socket.connecting) socket.destroy()
  else socket.resetAndDestroy()
}

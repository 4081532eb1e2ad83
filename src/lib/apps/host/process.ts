// A child process behind an app stream (the terminal's script(1), a script): its output as frames with
// backpressure, the client's frames as its input, and its end as an EXIT once every byte of output is out.
import {finished} from 'node:stream/promises'
import type {Readable, Writable} from 'node:stream'

import {type FrameChannel, writableDrained} from '../channel.js'
import type {ExitMessage} from '../messages.js'
import {frameName, FrameType, ProtocolError, readResize} from '../wire.js'

/** What runInput saw: the client ended its input, or the stream broke (error, reset, garbage). */
export type InputEnd = {error?: undefined; reason: 'ended'} | {error: Error; reason: 'gone'}

/** What both execa subprocesses (script(1), a script) give us. */
interface ChildLike {
  kill(signal?: NodeJS.Signals): boolean
  stderr: null | Readable
  stdout: null | Readable
}

/** An execa result with reject: false: a program that could not start has no exit code but a reason. */
interface ChildResult {
  exitCode?: number
  failed?: boolean
  originalMessage?: string
  signal?: string
}

/** Forward READABLE as TYPE frames; a full stream pauses it until drained. */
export function pumpOutput(readable: Readable, channel: FrameChannel, type: FrameType): void {
  readable.on('data', (chunk: Buffer) => {
    if (channel.send(type, chunk)) return
    readable.pause()
    void channel.drained().then(() => readable.resume())
  })
}

/** Feed the client's frames to STDIN (and resizes, signals to the handlers) until its input ends. */
export async function runInput(
  channel: FrameChannel, stdin: Writable, handlers: {resize?: (columns: number, rows: number) => void; signal?: (name: string) => void},
): Promise<InputEnd> {
  stdin.on('error', () => {}) // EPIPE once the process exited: its EXIT says what happened
  try {
    for await (const frame of channel.frames()) {
      switch (frame.type) {
        case FrameType.Stdin: {
          if (!stdin.writableEnded && !stdin.write(frame.payload)) await writableDrained(stdin)
          break
        }

        case FrameType.StdinEnd: {
          stdin.end()
          break
        }

        case FrameType.Resize: {
          const {columns, rows} = readResize(frame.payload)
          handlers.resize?.(columns, rows)
          break
        }

        case FrameType.Signal: {
          handlers.signal?.(frame.payload.toString('latin1'))
          break
        }

        default: {
          throw new ProtocolError(`${frameName(frame.type)} is not expected once the session runs`)
        }
      }
    }

    stdin.end()
    return {reason: 'ended'}
  } catch (error) {
    return {error: error as Error, reason: 'gone'}
  }
}

/**
 * Feed the client's frames to CHILD; when the client is gone (reset, garbage, the stream closed both ways)
 * stop CHILD with SIGNALS, one every GRACE_MS. Returns what broke the input, for the session's log line.
 */
export function feedChild(channel: FrameChannel, child: ChildLike & {stdin: null | Writable}, handlers: Parameters<typeof runInput>[2], signals: NodeJS.Signals[], graceMs = 2000): () => string | undefined {
  let broken: string | undefined
  const hangUp = (why: string): void => {
    if (broken !== undefined) return
    broken = why
    signals.forEach((signal, index) => (index === 0 ? terminate(child, signal) : setTimeout(() => terminate(child, signal), graceMs * index).unref()))
  }

  void runInput(channel, child.stdin!, handlers).then((end) => end.reason === 'gone' && hangUp(end.error.message))
  // A client that half-closed still reads the output; a stream closed both ways has nobody left to read it
  // (after a normal end the child has exited and the signals find nobody).
  channel.stream.once('close', () => hangUp('the client closed the stream'))
  return () => broken
}

/** Signal the child; a child that already exited is left alone (kill reports false). */
export function terminate(child: ChildLike, signal: NodeJS.Signals): void {
  child.kill(signal)
}

/** The process's end, once its output streams are drained into frames too (EXIT must be the last frame). */
export async function waitForExit(child: ChildLike & PromiseLike<ChildResult>, startedAt: number): Promise<ExitMessage & {startError?: string}> {
  const result = await child
  await Promise.all([child.stdout, child.stderr].map((stream) => stream && finished(stream).catch(() => {})))
  const signal = result.signal ?? undefined
  const durationMs = Date.now() - startedAt
  if (signal) return {code: null, durationMs, signal}
  // A program that could not start exits 127 as in a shell, with the reason for the log.
  if (result.exitCode === undefined) return {code: 127, durationMs, startError: result.originalMessage ?? 'could not be started'}
  return {code: result.exitCode, durationMs}
}

// The client half of a process behind an app stream (terminal, script): local input forwarded as STDIN
// (paused while the stream is full), STDOUT/STDERR written where they belong (at the pace they are taken),
// and EXIT as the result; an ERROR, or an end before EXIT, is a ZtError.
import {ExitCode, ZtError} from '../../errors.js'
import {type FrameChannel, writableDrained} from '../channel.js'
import {type ExitMessage, readError, readExit} from '../messages.js'
import {FrameType} from '../wire.js'
import {agentError} from './session.js'

/** Forward INPUT as STDIN frames, its end as STDIN_END; returns the function that stops forwarding. */
export function forwardInput(input: NodeJS.ReadableStream, channel: FrameChannel): () => void {
  let stopped = false
  const onData = (chunk: Buffer | string): void => {
    if (channel.send(FrameType.Stdin, Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))) return
    input.pause()
    // The stream drains (or closes) after the session ended too: a resumed stdin would keep this process alive.
    void channel.drained().then(() => stopped || input.resume())
  }

  const onEnd = (): void => void channel.send(FrameType.StdinEnd)
  input.on('data', onData)
  input.once('end', onEnd)
  input.resume()
  return () => {
    stopped = true
    input.off('data', onData)
    input.off('end', onEnd)
    input.pause()
  }
}

/** Write the process's output until its EXIT. */
export async function relayOutput(channel: FrameChannel, sinks: {stderr: NodeJS.WritableStream; stdout: NodeJS.WritableStream}, agent: string, what: string): Promise<ExitMessage> {
  for await (const frame of channel.frames()) {
    switch (frame.type) {
      case FrameType.Stdout:
      case FrameType.Stderr: {
        const sink = frame.type === FrameType.Stdout ? sinks.stdout : sinks.stderr
        if (!sink.write(frame.payload)) await writableDrained(sink)
        break
      }

      case FrameType.Exit: {
        return readExit(frame)
      }

      case FrameType.Error: {
        throw agentError(readError(frame), agent)
      }
    }
  }

  throw new ZtError('ZT_ERR_APP_CLOSED', `the connection to agent ${agent} ended before the ${what} exited`, {
    exit: ExitCode.unreachable,
    suggestion: `the ${what} on that host got a hangup; run it again`,
  })
}

/** The exit status a shell would give: the code, or 128 + the signal's number. */
export function exitStatus(exit: ExitMessage): number {
  if (exit.code !== null) return exit.code
  const numbers: Record<string, number> = {SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGPIPE: 13, SIGQUIT: 3, SIGTERM: 15}
  return 128 + (numbers[exit.signal ?? ''] ?? 0)
}

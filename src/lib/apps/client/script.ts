// `ztctl script run AGENT -- CMD ARGS...`: the program runs on AGENT's host; its stdout and stderr come
// back separately, local stdin goes in (unless told not to), a local Ctrl-C becomes SIGINT over there,
// and the result is its exit status.
import type {EventEmitter} from 'node:events'

import {type ExitMessage, readProcessReady} from '../messages.js'
import {FrameType} from '../wire.js'
import {type AppClientOptions, appPool, meshClient} from './connect.js'
import {forwardInput, relayOutput} from './process-io.js'
import {asZtError, startAppSession} from './session.js'

export interface ScriptIo {
  /** undefined: send no input (the program reads an immediate end of file) */
  stdin?: NodeJS.ReadableStream
  stderr: NodeJS.WritableStream
  stdout: NodeJS.WritableStream
  /** emits 'signal' with a name (`INT`, `TERM`, …) to send to the program */
  signals?: EventEmitter
}

export interface ScriptResult extends ExitMessage {
  agent: string
  /** what the agent ran: the resolved program and its arguments */
  argv: string[]
}

export async function runRemoteScript(options: AppClientOptions & {agent: string; argv: string[]; io: ScriptIo; shell?: string}): Promise<ScriptResult> {
  const client = await meshClient(options)
  const pool = appPool(client)
  const connection = await startAppSession(client, pool, options.agent, 'script', {argv: options.argv, shell: options.shell}).catch((error: unknown) => {
    pool.destroy()
    throw error
  })
  const {channel} = connection
  const {argv} = readProcessReady(connection.ready)
  const {io} = options
  const stopInput = io.stdin ? forwardInput(io.stdin, channel) : undefined
  if (!io.stdin) channel.send(FrameType.StdinEnd)
  const onSignal = (name: string): void => void channel.send(FrameType.Signal, name)
  io.signals?.on('signal', onSignal)
  try {
    return {...(await relayOutput(channel, io, options.agent, 'program')), agent: options.agent, argv}
  } catch (error) {
    throw asZtError(error, options.agent, 'script')
  } finally {
    stopInput?.()
    io.signals?.off('signal', onSignal)
    connection.close()
    pool.destroy()
  }
}

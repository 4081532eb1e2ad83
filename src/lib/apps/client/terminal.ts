// `ztctl terminal open AGENT`: the local terminal in raw mode (every key, Ctrl-C included, goes to the
// remote PTY; the line discipline there echoes and signals), window changes sent as RESIZE, the remote
// output written as it comes (at the pace the terminal takes it), and the shell's exit status returned.
import {type ExitMessage, readProcessReady} from '../messages.js'
import {FrameType, resizePayload} from '../wire.js'
import {type AppClientOptions, appPool, meshClient} from './connect.js'
import {forwardInput, relayOutput} from './process-io.js'
import {asZtError, startAppSession} from './session.js'

export interface TerminalIo {
  input: NodeJS.ReadableStream & {isTTY?: boolean; setRawMode?: (raw: boolean) => unknown}
  output: NodeJS.WritableStream & {columns?: number; isTTY?: boolean; off(event: 'resize', listener: () => void): unknown; on(event: 'resize', listener: () => void): unknown; rows?: number}
  /** $TERM for the remote shell */
  term?: string
}

export interface TerminalResult extends ExitMessage {
  agent: string
  /** the shell the agent ran */
  shell: string[]
}

export async function openTerminal(options: AppClientOptions & {agent: string; io: TerminalIo}): Promise<TerminalResult> {
  const {input, output} = options.io
  const client = await meshClient(options)
  const pool = appPool(client)
  const size = (): {columns: number; rows: number} => ({columns: output.columns || 80, rows: output.rows || 24})
  const connection = await startAppSession(client, pool, options.agent, 'terminal', {...size(), term: options.io.term || 'xterm-256color'}).catch((error: unknown) => {
    pool.destroy()
    throw error
  })
  const {channel} = connection
  const {argv: shell} = readProcessReady(connection.ready)
  const raw = input.isTTY === true && typeof input.setRawMode === 'function'
  const onResize = (): void => void channel.send(FrameType.Resize, resizePayload(size().columns, size().rows))
  if (raw) input.setRawMode!(true)
  const stopInput = forwardInput(input, channel)
  output.on('resize', onResize)
  try {
    // A PTY has one output; its "stderr" is the same screen.
    const exit = await relayOutput(channel, {stderr: output, stdout: output}, options.agent, 'shell')
    return {...exit, agent: options.agent, shell}
  } catch (error) {
    throw asZtError(error, options.agent, 'terminal')
  } finally {
    stopInput()
    output.off('resize', onResize)
    if (raw) input.setRawMode!(false)
    connection.close()
    pool.destroy()
  }
}

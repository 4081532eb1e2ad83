// `-` as a file name: read standard input (bounded: these are tokens and dumps, not streams).
import {ExitCode, ZtError} from '../errors.js'

const MAX_STDIN_BYTES = 64 * 1024 * 1024

export async function readStdin(what: string): Promise<string> {
  if (process.stdin.isTTY) {
    throw new ZtError('ZT_ERR_USAGE', `"-" reads ${what} from standard input, which is a terminal`, {exit: ExitCode.usage, suggestion: `pipe it in, e.g. \`cat FILE | ztctl … -\``})
  }

  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_STDIN_BYTES) throw new ZtError('ZT_ERR_USAGE', `standard input holds more than ${MAX_STDIN_BYTES} bytes of ${what}`, {exit: ExitCode.usage})
    chunks.push(chunk)
  }

  return Buffer.concat(chunks).toString('utf8')
}

// Every prompt has a flag: on a terminal, ask (@inquirer/prompts, loaded only then); anywhere else, refuse
// without the flag rather than wait for an answer nobody can give.
import {ExitCode, ZtError} from '../errors.js'

export async function confirmOrRefuse(question: string, options: {flag: string; skip: boolean}): Promise<void> {
  if (options.skip) return
  if (!process.stdin.isTTY || !process.stdout.isTTY) {
    throw new ZtError('ZT_ERR_CONFIRM_NEEDED', `${question.replace(/\s*Proceed\?$/, '')}: confirmation needed, and there is no terminal to ask on`, {
      exit: ExitCode.usage,
      suggestion: `pass ${options.flag} to go ahead without a prompt`,
    })
  }

  const {confirm} = await import('@inquirer/prompts')
  const yes = await confirm({default: false, message: question}).catch((error: Error) => {
    if (error.name === 'ExitPromptError') throw new ZtError('ZT_ERR_CANCELLED', 'cancelled', {exit: ExitCode.interrupted})
    throw error
  })
  if (!yes) throw new ZtError('ZT_ERR_CANCELLED', 'cancelled: nothing was changed', {exit: ExitCode.failure})
}

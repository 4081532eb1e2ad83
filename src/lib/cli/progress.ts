// Progress of install/uninstall, one component at a time: a spinner (ora, loaded only on a TTY) that ends
// in istioctl's lines (`✔ Controller installed`, `✘ CNI encountered an error: …`), plain lines elsewhere
// (CI logs, pipes): `- Processing resources for …`, each new waiting message once, then the same ✔/✘ lines.
import chalk from 'chalk'

export interface Progress {
  fail(text: string): void
  /** a line of its own, above the spinner */
  note(text: string): void
  start(text: string): void
  succeed(text: string): void
  update(text: string): void
}

/** Each ✔/✘ line ends with how long its step took, since its start(). */
export async function createProgress(stream: NodeJS.WriteStream): Promise<Progress> {
  const inner = await rawProgress(stream)
  let started: number | undefined
  const took = (text: string) => {
    const suffix = started === undefined ? '' : ` ${chalk.dim(`[${((Date.now() - started) / 1000).toFixed(1)}s]`)}`
    started = undefined
    return text + suffix
  }

  return {
    ...inner,
    fail: (text) => inner.fail(took(text)),
    start(text) {
      started = Date.now()
      inner.start(text)
    },
    succeed: (text) => inner.succeed(took(text)),
  }
}

async function rawProgress(stream: NodeJS.WriteStream): Promise<Progress> {
  if (stream.isTTY && !process.env.CI) {
    const {default: ora} = await import('ora')
    const spinner = ora({stream})
    return {
      fail: (text) => spinner.fail(text),
      note(text) {
        const spinning = spinner.isSpinning
        if (spinning) spinner.clear()
        stream.write(text + '\n')
        if (spinning) spinner.render()
      },
      start: (text) => spinner.start(text),
      succeed: (text) => spinner.succeed(text),
      update(text) {
        spinner.text = text
      },
    }
  }

  let last = ''
  const line = (text: string) => stream.write(text + '\n')
  return {
    fail: (text) => line(`${chalk.red('✘')} ${text}`),
    note: line,
    start(text) {
      last = text
      line(`- ${text}`)
    },
    succeed: (text) => line(`${chalk.green('✔')} ${text}`),
    update(text) {
      if (text !== last) line(chalk.dim(`  ${text}`))
      last = text
    },
  }
}

// controller-proc.js - the real controller (`bin/run.js controller run`) as a child process of the bench,
// on 127.0.0.1, with its own ZTCTL_HOME and data dir; restarted on the same port; its CPU and memory
// read from /proc. Stopped by PID only.
import {spawn} from 'node:child_process'
import {createWriteStream} from 'node:fs'
import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const RUN_JS = fileURLToPath(new URL('../../bin/run.js', import.meta.url))
const START_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 20_000
const CLOCK_TICKS = 100

export class ControllerProcess {
  port = 0
  url = ''
  #child
  #log

  constructor({dataDir, home, logFile, logLevel = 'info'}) {
    this.dataDir = dataDir
    this.home = home
    this.logLevel = logLevel
    this.#log = createWriteStream(logFile, {flags: 'a'})
  }

  get pid() {
    return this.#child?.pid
  }

  get adminIdentityPath() {
    return path.join(this.home, 'identities', 'admin.json')
  }

  /** Start and resolve once the banner names the URL; the port stays the same across restarts. */
  async start() {
    for (let attempt = 0; attempt < 10; attempt++) {
      // CONTROL_NODE_ARGS: node options for the controller, e.g. "--cpu-prof --cpu-prof-dir=DIR" (written at each stop)
      const nodeArgs = (process.env.CONTROL_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)
      const child = spawn(process.execPath, [...nodeArgs, RUN_JS, 'controller', 'run', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir, '--log-level', this.logLevel], {
        cwd: this.home, env: {...process.env, NO_COLOR: '1', ZTCTL_HOME: this.home}, stdio: ['ignore', 'pipe', 'pipe'],
      })
      this.#child = child
      child.stderr.pipe(this.#log, {end: false})
      const outcome = await banner(child)
      if (outcome.url) {
        this.url = outcome.url
        this.port = Number(new URL(outcome.url).port)
        return
      }

      // The old socket of a restart may not be released yet.
      if (!/EADDRINUSE/.test(outcome.text)) throw new Error(`the controller did not start (exit ${outcome.code}): ${outcome.text.slice(-2000)}`)
      await new Promise((resolve) => setTimeout(resolve, 250))
    }

    throw new Error(`the controller could not bind 127.0.0.1:${this.port}`)
  }

  async stop(signal = 'SIGTERM') {
    const child = this.#child
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
    await exited
    clearTimeout(timer)
  }

  async restart() {
    await this.stop()
    await this.start()
  }

  /** CPU seconds (user + system) so far, RSS and peak RSS (KiB) of the controller process. */
  async stats() {
    const [stat, status] = await Promise.all([readFile(`/proc/${this.pid}/stat`, 'utf8'), readFile(`/proc/${this.pid}/status`, 'utf8')])
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const kib = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? Number.NaN)
    return {cpuSeconds: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS, hwmKiB: kib('VmHWM'), rssKiB: kib('VmRSS')}
  }

  /** Reset the peak RSS (VmHWM), so the next reading is the peak of what follows (needs root or the same user). */
  async resetPeak() {
    await writeFile(`/proc/${this.pid}/clear_refs`, '5').catch(() => {})
  }
}

function banner(child) {
  return new Promise((resolve) => {
    let text = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      resolve({code: null, text})
    }, START_TIMEOUT_MS)
    const onData = (chunk) => {
      text += chunk.toString()
      const match = /controller listening at: (https:\/\/\S+)/.exec(text)
      if (!match) return
      clearTimeout(timer)
      child.stdout.off('data', onData)
      child.stdout.resume()
      child.off('exit', onExit)
      resolve({text, url: match[1]})
    }

    const onExit = (code) => {
      clearTimeout(timer)
      resolve({code, text})
    }

    child.stdout.on('data', onData)
    child.stderr.on('data', (chunk) => (text += chunk.toString()))
    child.once('exit', onExit)
  })
}

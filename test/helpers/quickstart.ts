// `ztctl quickstart --json` as a child process, for end-to-end tests: resolves once its summary is printed
// (after the tunnel works end to end). Killed by PID when the test ends.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'

import {RUN_JS} from './controller.js'

export interface QuickstartJson {
  agents: {addresses: {admin: string; metrics: string}; name: string; pid: number}[]
  dashboard?: {url: string}
  demo: {service: string; url: string}
  home: string
}

export async function startQuickstart(t: {after(fn: () => void): void}, args: string[] = []) {
  const child = spawn(process.execPath, [RUN_JS, 'quickstart', '--json', ...args], {env: {...process.env, NO_COLOR: '1'}, stdio: ['ignore', 'pipe', 'pipe']})
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
  const deadline = Date.now() + 30_000
  while (!stdout.trim().endsWith('}') && Date.now() < deadline && child.exitCode === null) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }

  assert.equal(child.exitCode, null, `quickstart exited early: ${stderr}`)
  return {child, mesh: JSON.parse(stdout) as QuickstartJson, stderr: () => stderr}
}

// A real mesh for the apps' tests: the controller (bin/run.js controller run), agents as `agent run`
// processes following it (ctl.startAgent: port 0 everywhere, ready files in $ZTCTL_HOME/agents/), user
// identities created and enrolled like an admin would, and the CLI run as any of them.
//
//   const mesh = await startAppMesh(t)
//   const b = await mesh.agent('agent-b', {dataPath: 'node'})
//   const alice = await mesh.user('alice')                 // path of alice's identity file
//   await mesh.zt(['terminal', 'config', '--agent', 'agent-b', '--add-user', '@alice'])
//   await b.waitForApp('terminal', (app) => app.allow.includes('@alice'))
//   await mesh.zt(['script', 'run', 'agent-b', '-i', alice, '--', 'uname'])
import path from 'node:path'
import type {TestContext} from 'node:test'

import type {AppDump, ConfigDump} from '../../src/lib/proxy/daemon/agent.js'
import {type RunResult, startTestController, type TestAgent, type TestController} from '../helpers/controller.js'
import {httpGet, waitFor} from '../proxy/helpers.js'

export interface AppAgent extends TestAgent {
  /** the agent's app log lines (scope "app"), parsed; MESSAGE filters them */
  appLines(message?: RegExp): Record<string, unknown>[]
  configDump(): Promise<ConfigDump>
  /** a metric from /metrics, summed over the label sets that have LABELS */
  metric(name: string, labels?: Record<string, string>): Promise<number>
  /** wait until the agent applied APP (and CHECK holds for it) */
  waitForApp(app: AppDump['app'], check?: (app: AppDump) => boolean): Promise<AppDump>
}

export interface AppMesh {
  agent(name: string, options?: {advertise?: string; dataPath?: 'native' | 'node'}): Promise<AppAgent>
  ctl: TestController
  /** create and enroll a user identity; returns its identity file */
  user(name: string): Promise<string>
  /** run the CLI as the admin (the context); pass --identity FILE to act as a user */
  zt(args: string[], options?: {env?: NodeJS.ProcessEnv; timeoutMs?: number}): Promise<RunResult>
}

/** CONTROLLER_ARGS: more `controller run` flags (e.g. a short --cert-ttl). */
export async function startAppMesh(t: TestContext, controllerArgs: string[] = []): Promise<AppMesh> {
  const ctl = await startTestController(t, {extraArgs: controllerArgs})
  const zt = (args: string[], options: {env?: NodeJS.ProcessEnv; timeoutMs?: number} = {}): Promise<RunResult> => ctl.run(args, options)
  return {
    async agent(name, options = {}) {
      const extra = [...(options.dataPath ? ['--data-path', options.dataPath] : []), ...(options.advertise ? ['--advertise', options.advertise] : [])]
      return appAgent(await ctl.startAgent(name, extra))
    },
    ctl,
    async user(name) {
      for (const args of [['identity', 'create', name], ['enroll', `${name}.jwt`, '--force']]) {
        const result = await zt(args)
        if (result.code !== 0) throw new Error(`ztctl ${args.join(' ')} failed (${result.code}): ${result.stderr}`)
      }

      return path.join(ctl.home, `${name}.json`)
    },
    zt,
  }
}

function appAgent(agent: TestAgent): AppAgent {
  const {addresses} = agent.ready
  const configDump = async (): Promise<ConfigDump> => JSON.parse((await httpGet(`http://${addresses.admin}/config_dump`)).body) as ConfigDump
  const lines = (): Record<string, unknown>[] => agent.logs().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)
  return {
    ...agent,
    appLines: (message) => lines().filter((line) => line.scope === 'app' && (!message || message.test(String(line.message)))),
    configDump,
    async metric(metric, labels = {}) {
      const text = (await httpGet(`http://${addresses.metrics}/metrics`)).body
      const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`)
      return text.split('\n').filter((line) => line.startsWith(`${metric}{`) && wanted.every((label) => line.includes(label)))
        .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0)
    },
    waitForApp: (app, check = () => true) => waitFor(`${agent.name} to apply its ${app} app`, async () => {
      const dump = await configDump()
      return dump.apps.find((candidate) => candidate.app === app && candidate.enabled && check(candidate))
    }, 15_000),
  }
}

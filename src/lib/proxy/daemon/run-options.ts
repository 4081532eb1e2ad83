// `ztctl agent run`'s flags as the daemon's options: durations checked (--drain-timeout also for hub run),
// the hub count bounded, the admin door chosen for --no-listen, and in a pod (--kubernetes) what the
// downward API tells (POD_IP).
import path from 'node:path'

import {MAX_HUBS} from '../../config/types.js'
import {ExitCode, ZtError} from '../../errors.js'
import {parseDuration} from '../../util/duration.js'
import type {LogLevel} from '../observe/log.js'
import type {DaemonOptions} from './launch.js'

/** The flag values as parsed (durations still as written). */
export interface AgentRunFlags {
  admin: string
  advertise?: string
  config?: string
  controller?: string
  'data-path': string
  'dns-listen': string
  'dns-resolv-conf'?: string
  'dns-upstream'?: string
  'drain-timeout': string
  hbone: string
  hub?: string[]
  identity?: string
  'inpod-socket'?: string
  'inpod-state-dir': string
  'kube-ca-file': string
  'kube-token-file': string
  kubernetes: boolean
  'log-level': LogLevel
  metrics: string
  mode?: string
  'no-listen': boolean
  node?: string
  'proxy-port'?: string[]
  readiness: string
  'ready-file'?: string
  'stop-with-stdin': boolean
}

export interface AgentRunContext {
  buildVersion: string
  /** ZTCTL_HOME's data dir: --no-listen's admin socket goes below it */
  dataDir: () => string
  env: NodeJS.ProcessEnv
  json: boolean
}

const DEFAULT_ADMIN = '127.0.0.1:15000'

/** FLAGS as the daemon's options; a bad value is a ZtError (ZT_ERR_USAGE) naming its flag. */
export async function agentRunOptions(flags: AgentRunFlags, context: AgentRunContext): Promise<DaemonOptions> {
  const drainTimeoutMs = parseDrainTimeout(flags['drain-timeout'])
  const idleTrimMs = idleTrim(context.env.ZTCTL_AGENT_IDLE_TRIM ?? '10s')
  const sidecar = flags.mode ? await sidecarOptions(flags, flags.mode as 'proxy' | 'tproxy') : undefined
  const hubs = flags.hub ?? []
  if (hubs.length > MAX_HUBS) throw new ZtError('ZT_ERR_USAGE', `${hubs.length} hubs given; at most ${MAX_HUBS}`, {exit: ExitCode.usage, suggestion: `pass --hub at most ${MAX_HUBS} times`})
  const noListen = flags['no-listen']
  // --no-listen: the admin door is a socket by the agent's name unless another one is named.
  const admin = noListen && flags.admin === DEFAULT_ADMIN ? undefined : flags.admin
  return {
    admin,
    adminSocketDir: noListen && !admin ? path.join(context.dataDir(), 'agents') : undefined,
    advertise: flags.advertise ?? (flags.kubernetes ? podAdvertise(flags.hbone, context.env.POD_IP) : undefined),
    buildVersion: context.buildVersion,
    config: flags.config,
    dataPath: flags['data-path'] as DaemonOptions['dataPath'],
    drainTimeoutMs,
    hbone: flags.hbone,
    controllerUrl: flags.identity ? flags.controller : undefined,
    hubs,
    identityFile: flags.identity,
    idleTrimMs,
    // On Kubernetes the controller publishes the pods as workloads (its informers): the agent only serves them.
    inpod: flags['inpod-socket'] ? {publish: !flags.kubernetes, socketPath: flags['inpod-socket'], stateDir: flags['inpod-state-dir']} : undefined,
    kubernetes: flags.kubernetes ? kubernetesOptions(flags) : undefined,
    json: context.json,
    logLevel: flags['log-level'],
    metrics: flags.metrics,
    noListen,
    readiness: flags.readiness,
    readyFile: flags['ready-file'],
    sidecar,
    stopWithStdin: flags['stop-with-stdin'],
  }
}

/** --drain-timeout (agent run, hub run) in milliseconds. */
export function parseDrainTimeout(text: string): number {
  const seconds = parseDuration(text)
  if (seconds === undefined) {
    throw new ZtError('ZT_ERR_USAGE', `--drain-timeout ${JSON.stringify(text)} is not a duration`, {exit: ExitCode.usage, suggestion: 'e.g. --drain-timeout 5s'})
  }

  return seconds * 1000
}

/** Undocumented knob (tests, debugging): ZTCTL_AGENT_IDLE_TRIM=DURATION, or 0 to turn the idle trim off. */
function idleTrim(text: string): number {
  const seconds = text === '0' ? 0 : parseDuration(text)
  if (seconds === undefined) {
    throw new ZtError('ZT_ERR_USAGE', `ZTCTL_AGENT_IDLE_TRIM=${JSON.stringify(text)} is not a duration`, {exit: ExitCode.usage, suggestion: 'e.g. ZTCTL_AGENT_IDLE_TRIM=10s, or 0 to turn the idle trim off'})
  }

  return Math.round(seconds * 1000)
}

function kubernetesOptions(flags: AgentRunFlags): NonNullable<DaemonOptions['kubernetes']> {
  const {controller} = flags
  if (!controller || !/^https:\/\/\S+$/.test(controller)) {
    throw new ZtError('ZT_ERR_USAGE', `--kubernetes needs --controller https://HOST:PORT${controller ? ` (got ${JSON.stringify(controller)})` : ''}`, {
      exit: ExitCode.usage,
      suggestion: 'pass --controller https://$(ZTCTL_CONTROLLER_SERVICE_HOST):$(ZTCTL_CONTROLLER_SERVICE_PORT), as the DaemonSet ztctl install renders does',
    })
  }

  return {caFile: flags['kube-ca-file'], controller, node: flags.node, tokenFile: flags['kube-token-file']}
}

async function sidecarOptions(flags: AgentRunFlags, mode: 'proxy' | 'tproxy'): Promise<NonNullable<DaemonOptions['sidecar']>> {
  const {parseProxyPort} = await import('../../sidecar/sidecar.js')
  return {
    dnsListen: flags['dns-listen'],
    dnsUpstream: flags['dns-upstream'],
    mode,
    proxyPorts: Object.fromEntries((flags['proxy-port'] ?? []).map((text) => parseProxyPort(text))),
    resolvConf: flags['dns-resolv-conf'],
  }
}

/** In a pod, other agents dial the pod's IP (POD_IP, from the downward API) on the HBONE port. */
function podAdvertise(hbone: string, ip: string | undefined): string | undefined {
  const port = /:(\d+)$/.exec(hbone)?.[1]
  if (!ip || !port) return undefined
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`
}

// `ztctl controller run`'s flags as the controller's options: durations checked and converted, the
// Kubernetes site told its namespace and replica by the pod's downward API (POD_NAMESPACE, POD_NAME).
import {ExitCode, ZtError} from '../errors.js'
import {DEFAULT_NAMESPACE} from '../kube/objects.js'
import type {LogLevel} from '../log/logger.js'
import {parseDuration} from '../util/duration.js'
import type {ControllerOptions} from './controller.js'

/** The flag values as parsed (durations still as written). */
export interface ControllerRunFlags {
  'admin-cert-ttl': string
  advertise?: string
  'ca-cert'?: string
  'ca-key'?: string
  'cert-ttl': string
  'context-name': string
  'data-dir'?: string
  health?: string
  'host-identity-secret'?: string
  hub: boolean
  'hub-identity-secret'?: string
  'hub-listen': string
  'hub-name': string
  'housekeeping-interval': string
  'kube-context'?: string
  kubeconfig?: string
  'leader-election': string
  listen: string
  'log-level': LogLevel
  namespace?: string
  store: string
  'trust-domain'?: string
}

export type ControllerRunOptions = Omit<ControllerOptions, 'home' | 'logger' | 'version'>

/** FLAGS as the options of startController; a bad duration is a ZtError (ZT_ERR_BAD_FLAG) naming its flag. */
export function controllerRunOptions(flags: ControllerRunFlags, env: NodeJS.ProcessEnv = process.env): ControllerRunOptions {
  const certTtlSeconds = certTtl('cert-ttl', flags['cert-ttl'], 'e.g. --cert-ttl 24h or --cert-ttl 30s')
  const adminCertTtlSeconds = certTtl('admin-cert-ttl', flags['admin-cert-ttl'], 'e.g. --admin-cert-ttl 720h')
  const housekeepingMs = durationMs('housekeeping-interval', flags['housekeeping-interval'])
  const lease = leaderElection(flags['leader-election'])
  return {
    adminCertTtlSeconds,
    advertise: flags.advertise,
    caImport: flags['ca-cert'] ? {certFile: flags['ca-cert'], keyFile: flags['ca-key']!} : undefined,
    certTtlSeconds,
    contextName: flags['context-name'],
    dataDir: flags['data-dir'],
    health: flags.health,
    hub: flags.hub ? {listen: flags['hub-listen'], logLevel: flags['log-level'], name: flags['hub-name']} : undefined,
    housekeepingMs,
    kube: {
      context: flags['kube-context'],
      hostIdentitySecret: flags['host-identity-secret'],
      hubIdentitySecret: flags['hub-identity-secret'],
      kubeconfig: flags.kubeconfig,
      lease,
      namespace: flags.namespace ?? env.POD_NAMESPACE ?? DEFAULT_NAMESPACE,
      podName: env.POD_NAME,
    },
    listen: flags.listen,
    store: flags.store as 'kubernetes' | 'sqlite',
    trustDomain: flags['trust-domain'],
  }
}

/** A certificate lifetime in seconds: at least 2 s (renewal happens at half of it). */
function certTtl(flag: string, text: string, suggestion: string): number {
  const seconds = parseDuration(text)
  if (seconds === undefined || seconds < 2) {
    throw new ZtError('ZT_ERR_BAD_FLAG', `--${flag} "${text}" is not a duration of at least 2s`, {exit: ExitCode.usage, suggestion})
  }

  return seconds
}

/** A duration in milliseconds (at least 1 ms). */
function durationMs(flag: string, text: string): number {
  const seconds = parseDuration(text)
  if (seconds === undefined || seconds < 0.001) {
    throw new ZtError('ZT_ERR_BAD_FLAG', `--${flag}: "${text}" is not a duration`, {exit: ExitCode.usage, suggestion: 'e.g. 500ms, 10s, 1m'})
  }

  return Math.round(seconds * 1000)
}

/** --leader-election DURATION,RENEW-DEADLINE,RETRY-PERIOD, each shorter than the one before. */
function leaderElection(text: string): {durationMs: number; renewDeadlineMs: number; retryPeriodMs: number} {
  const [leaseDuration, renewDeadline, retryPeriod] = text.split(',').map((part) => durationMs('leader-election', part))
  if (retryPeriod === undefined || !(retryPeriod < renewDeadline && renewDeadline < leaseDuration)) {
    throw new ZtError('ZT_ERR_BAD_FLAG', `--leader-election "${text}" is not DURATION,RENEW-DEADLINE,RETRY-PERIOD, each shorter than the one before`, {
      exit: ExitCode.usage, suggestion: 'e.g. --leader-election 15s,10s,2s',
    })
  }

  return {durationMs: leaseDuration, renewDeadlineMs: renewDeadline, retryPeriodMs: retryPeriod}
}

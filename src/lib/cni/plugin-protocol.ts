// What the ztctl CNI plugin (src/lib/cni/plugin/ztctl-cni.c) sends the CNI agent and what it expects back.
// Request: one JSON object, then the end of the stream (the plugin half-closes):
//   {"version":1,"command":"ADD"|"DEL"|"CHECK","containerId","netns","ifname","args","path","config":{…}}
// where `config` is the network configuration the runtime gave the plugin (with prevResult) and the other
// fields are its CNI_* environment. Reply: one line, `ok`, or `error CODE MESSAGE` (CODE: CNI's error codes,
// 100+ ours); the plugin turns it into CNI's output. Anything else is refused with an error reply.
import {isIP} from 'node:net'

import {ZtError} from '../errors.js'

export const CNI_PLUGIN_PROTOCOL_VERSION = 1
/** The plugin accepts 1 MiB of configuration; the request adds its environment around it. */
export const MAX_PLUGIN_REQUEST_BYTES = 1024 * 1024 + 64 * 1024
export const CNI_PLUGIN_TYPE = 'ztctl-cni'

/** CNI's well-known error codes, and ours (100+). */
export const CniErrorCode = {decode: 6, invalidConfig: 7, invalidEnv: 4, redirectFailed: 100, tryAgainLater: 11, unknownContainer: 3} as const

export interface CniPodRef {
  name: string
  namespace: string
  uid?: string
}

export interface CniPluginRequest {
  command: 'ADD' | 'CHECK' | 'DEL'
  containerId: string
  netns: string
  ifname: string
  /** K8S_POD_NAMESPACE / K8S_POD_NAME / K8S_POD_UID of CNI_ARGS; undefined for a sandbox that is no Kubernetes pod */
  pod?: CniPodRef
  /** the pod's addresses from prevResult (ADD/CHECK), without prefix lengths */
  ips: string[]
  cniVersion: string
}

export class CniRequestError extends ZtError {
  constructor(message: string, readonly cniCode: number = CniErrorCode.decode) {
    super('ZT_ERR_CNI_REQUEST', message, {suggestion: 'use the ztctl-cni plugin of the same ztctl version as the CNI agent'})
  }
}

const MAX_FIELD_CHARS = 4096
const MAX_IPS = 16

function field(object: Record<string, unknown>, key: string, required = true): string {
  const value = object[key] ?? ''
  if (typeof value !== 'string' || value.length > MAX_FIELD_CHARS) throw new CniRequestError(`"${key}" must be a string of at most ${MAX_FIELD_CHARS} characters`)
  if (required && value === '') throw new CniRequestError(`"${key}" is empty`, CniErrorCode.invalidEnv)
  return value
}

/** CNI_ARGS: `K=V;K=V`; the pod's identity when the runtime is Kubernetes' (kubelet sets K8S_POD_*). */
export function podOfCniArgs(args: string): CniPodRef | undefined {
  const pairs = new Map<string, string>()
  for (const part of args.split(';')) {
    const equals = part.indexOf('=')
    if (equals > 0) pairs.set(part.slice(0, equals), part.slice(equals + 1))
  }

  const namespace = pairs.get('K8S_POD_NAMESPACE')
  const name = pairs.get('K8S_POD_NAME')
  if (!namespace || !name) return undefined
  const uid = pairs.get('K8S_POD_UID')
  return uid ? {name, namespace, uid} : {name, namespace}
}

/** prevResult.ips[].address (CIDR notation in every CNI version since 0.3.0) → the addresses. */
function ipsOfPrevResult(config: Record<string, unknown>): string[] {
  const prev = config.prevResult
  if (typeof prev !== 'object' || prev === null) return []
  const ips = (prev as {ips?: unknown}).ips
  if (!Array.isArray(ips)) return []
  const addresses = ips.slice(0, MAX_IPS).map((entry) => String((entry as {address?: unknown})?.address ?? '').split('/')[0])
  return addresses.filter((ip) => isIP(ip) !== 0)
}

/** Decode and check one request (the bytes the plugin sent); throws CniRequestError. */
export function parsePluginRequest(bytes: Buffer): CniPluginRequest {
  let value: unknown
  try {
    value = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw new CniRequestError('the request is not JSON')
  }

  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new CniRequestError('the request is not a JSON object')
  const object = value as Record<string, unknown>
  if (object.version !== CNI_PLUGIN_PROTOCOL_VERSION) throw new CniRequestError(`the plugin speaks protocol version ${JSON.stringify(object.version)}, this agent ${CNI_PLUGIN_PROTOCOL_VERSION}`)
  const command = object.command
  if (command !== 'ADD' && command !== 'DEL' && command !== 'CHECK') throw new CniRequestError(`unknown command ${JSON.stringify(command)}`, CniErrorCode.invalidEnv)
  const config = object.config
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new CniRequestError('"config" is not the network configuration object', CniErrorCode.invalidConfig)
  const configObject = config as Record<string, unknown>
  const netns = field(object, 'netns', command !== 'DEL')
  if (netns !== '' && !netns.startsWith('/')) throw new CniRequestError(`CNI_NETNS must be an absolute path, got ${JSON.stringify(netns.slice(0, 64))}`, CniErrorCode.invalidEnv)
  return {
    cniVersion: typeof configObject.cniVersion === 'string' ? configObject.cniVersion : '',
    command,
    containerId: field(object, 'containerId'),
    ifname: field(object, 'ifname', false),
    ips: command === 'DEL' ? [] : ipsOfPrevResult(configObject),
    netns,
    pod: podOfCniArgs(field(object, 'args', false)),
  }
}

/** The reply line: ok, or an error the plugin reports to the runtime (one line, bounded). */
export function encodePluginReply(error?: {code: number; message: string}): string {
  if (!error) return 'ok\n'
  return `error ${error.code} ${error.message.replaceAll(/[\r\n]+/g, ' ').slice(0, 2048)}\n`
}

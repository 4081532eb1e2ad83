// The CNI ↔ node-agent protocol ("ZDS"-like, NDJSON over a Unix stream socket). The agent listens and
// `ztctl redirect` connects. Agent → client first: hello. Client → agent: add | delete | snapshot; each
// request gets exactly one ack (no error = success). Garbage gets an ack with an error and the connection
// is closed — the parser below never throws anything but a typed InpodProtocolError.
import {isIP} from 'node:net'

import {ZtError} from '../errors.js'
import {LineSplitter, LineTooLongError, parseJsonObject} from '../controller/ndjson.js'

export const INPOD_PROTOCOL_VERSION = 1
/** Longest accepted line (one message), in bytes. */
export const INPOD_MAX_LINE_BYTES = 64 * 1024
export const DEFAULT_INPOD_SOCKET = '/var/run/ztctl/inpod.sock'
export const DEFAULT_INPOD_STATE_DIR = '/var/run/ztctl/inpod'

export interface InpodWorkloadInfo {
  namespace: string
  name: string
  serviceAccount: string
}

export interface InpodHello {
  type: 'hello'
  version: number
}

export interface InpodAdd {
  type: 'add'
  uid: string
  workload: InpodWorkloadInfo
  /** Path of the workload's network namespace: /var/run/netns/NAME or /proc/PID/ns/net. */
  netns: string
  ips: string[]
}

export interface InpodDelete {
  type: 'delete'
  uid: string
}

/** The full set of workloads: the agent adds the missing ones and removes those not listed. */
export interface InpodSnapshot {
  type: 'snapshot'
  workloads: InpodAdd[]
}

export interface InpodAck {
  type: 'ack'
  uid?: string
  error?: string
}

export type InpodRequest = InpodAdd | InpodDelete | InpodSnapshot
export type InpodMessage = InpodHello | InpodRequest | InpodAck

export class InpodProtocolError extends ZtError {
  constructor(message: string) {
    super('ZT_ERR_INPOD_PROTOCOL', message, {suggestion: 'Use the same ztctl version for `redirect` and `agent run`.'})
  }
}

const MAX_UID_CHARS = 253
const MAX_NAME_CHARS = 253
const MAX_IPS = 16
const MAX_SNAPSHOT_WORKLOADS = 4096

function requireString(object: Record<string, unknown>, key: string, maxChars: number, where: string): string {
  const value = object[key]
  if (typeof value !== 'string' || value === '' || value.length > maxChars) {
    throw new InpodProtocolError(`${where}: "${key}" must be a non-empty string of at most ${maxChars} characters`)
  }

  return value
}

function asObject(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InpodProtocolError(`${where} must be an object`)
  return value as Record<string, unknown>
}

function parseAdd(object: Record<string, unknown>, where = 'add'): InpodAdd {
  const workload = asObject(object.workload, `${where}.workload`)
  const ips = object.ips
  if (!Array.isArray(ips) || ips.length > MAX_IPS || !ips.every((ip) => typeof ip === 'string' && isIP(ip) !== 0)) {
    throw new InpodProtocolError(`${where}: "ips" must be a list of at most ${MAX_IPS} IP addresses`)
  }

  const netns = requireString(object, 'netns', 4096, where)
  if (!netns.startsWith('/')) throw new InpodProtocolError(`${where}: "netns" must be an absolute path`)
  return {
    type: 'add',
    uid: requireString(object, 'uid', MAX_UID_CHARS, where),
    workload: {
      namespace: requireString(workload, 'namespace', MAX_NAME_CHARS, `${where}.workload`),
      name: requireString(workload, 'name', MAX_NAME_CHARS, `${where}.workload`),
      serviceAccount: requireString(workload, 'serviceAccount', MAX_NAME_CHARS, `${where}.workload`),
    },
    netns,
    ips: ips as string[],
  }
}

/** Validate one decoded message; throws InpodProtocolError on anything unexpected. */
export function parseInpodMessage(value: Record<string, unknown>): InpodMessage {
  switch (value.type) {
    case 'hello': {
      if (typeof value.version !== 'number' || !Number.isInteger(value.version)) throw new InpodProtocolError('hello: "version" must be an integer')
      return {type: 'hello', version: value.version}
    }

    case 'add': {
      return parseAdd(value)
    }

    case 'delete': {
      return {type: 'delete', uid: requireString(value, 'uid', MAX_UID_CHARS, 'delete')}
    }

    case 'snapshot': {
      const {workloads} = value
      if (!Array.isArray(workloads) || workloads.length > MAX_SNAPSHOT_WORKLOADS) {
        throw new InpodProtocolError(`snapshot: "workloads" must be a list of at most ${MAX_SNAPSHOT_WORKLOADS} add messages`)
      }

      return {type: 'snapshot', workloads: workloads.map((item, index) => parseAdd(asObject(item, `snapshot.workloads[${index}]`), `snapshot.workloads[${index}]`))}
    }

    case 'ack': {
      const ack: InpodAck = {type: 'ack'}
      if (value.uid !== undefined) ack.uid = String(value.uid).slice(0, MAX_UID_CHARS)
      if (value.error !== undefined) ack.error = String(value.error).slice(0, 4096)
      return ack
    }

    default: {
      throw new InpodProtocolError(`unknown message type ${JSON.stringify(String(value.type)).slice(0, 64)}`)
    }
  }
}

/** Bounded NDJSON decoder: bytes in, validated messages out; garbage throws InpodProtocolError. */
export class InpodLineParser {
  private readonly splitter = new LineSplitter(INPOD_MAX_LINE_BYTES)

  push(chunk: Buffer): InpodMessage[] {
    let lines: string[]
    try {
      lines = this.splitter.push(chunk)
    } catch (error) {
      if (error instanceof LineTooLongError) throw new InpodProtocolError(`a message exceeds ${INPOD_MAX_LINE_BYTES} bytes`)
      throw error
    }

    return lines.map((line) => {
      const object = parseJsonObject(line)
      if (object === undefined) throw new InpodProtocolError('a line is not a JSON object')
      return parseInpodMessage(object)
    })
  }
}

/** One message as an NDJSON line. */
export function encodeInpodMessage(message: InpodMessage): string {
  return `${JSON.stringify(message)}\n`
}

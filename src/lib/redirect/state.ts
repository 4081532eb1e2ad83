// The state cache ("CNI cache"): one `<state-dir>/<uid>.json` per redirected workload, holding the add
// message the agent needs (it loads the folder as its snapshot on start) and the exact firewall and
// routing state from before `add`, so `remove` can restore it.
import {readdir, rm} from 'node:fs/promises'
import path from 'node:path'

import {ExitCode, ZtError} from '../errors.js'
import {readJsonFile, writeFileAtomic} from '../home/home.js'
import {DEFAULT_INPOD_STATE_DIR, type InpodAdd, parseInpodMessage} from '../inpod/protocol.js'
import type {Backend} from './backend.js'
import type {FirewallSnapshot} from './compare.js'
import type {Family} from './rules.js'
import type {RoutingState} from './routing.js'

export {DEFAULT_INPOD_STATE_DIR}

export interface RedirectRecord {
  /** the add message, as sent to the agent */
  add: InpodAdd
  /** `iptables` in records written before the iptables variants were told apart (the machine's variant) */
  backend: Backend | 'iptables'
  dnsCapture: boolean
  families: Family[]
  /** `dev:ino` of the netns file when it was added */
  netnsId: string
  createdAt: string
  before: {
    firewall: FirewallSnapshot
    routing: Partial<Record<`${Family}`, RoutingState>>
  }
}

const WORKLOAD_PART = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/

/** NS/NAME → {namespace, name}; Kubernetes-style names only (they end up in file names). */
export function parseWorkloadRef(text: string): {name: string; namespace: string} {
  const [namespace, name, ...rest] = text.split('/')
  if (rest.length > 0 || !namespace || !name || !WORKLOAD_PART.test(namespace) || !WORKLOAD_PART.test(name)) {
    throw new ZtError('ZT_ERR_USAGE', `workload must be NAMESPACE/NAME in lower-case DNS-label form, got ${JSON.stringify(text)}`, {
      exit: ExitCode.usage, suggestion: 'e.g. --workload default/web-1',
    })
  }

  return {name, namespace}
}

export function validateServiceAccount(text: string): string {
  if (!WORKLOAD_PART.test(text)) {
    throw new ZtError('ZT_ERR_USAGE', `service account must be a lower-case DNS label, got ${JSON.stringify(text)}`, {exit: ExitCode.usage, suggestion: 'e.g. --service-account web'})
  }

  return text
}

/** The uid of a workload: stable per NS/NAME ('_' cannot occur in either part, so it is unambiguous). */
export const workloadUid = (namespace: string, name: string): string => `${namespace}_${name}`

const recordPath = (stateDir: string, uid: string): string => path.join(stateDir, `${uid}.json`)

export async function readRecord(stateDir: string, uid: string): Promise<RedirectRecord | undefined> {
  return readJsonFile<RedirectRecord>(recordPath(stateDir, uid))
}

export async function writeRecord(stateDir: string, record: RedirectRecord): Promise<void> {
  await writeFileAtomic(recordPath(stateDir, record.add.uid), `${JSON.stringify(record, null, 2)}\n`, 0o600)
}

export async function deleteRecord(stateDir: string, uid: string): Promise<void> {
  await rm(recordPath(stateDir, uid), {force: true})
}

/** Every valid record of the folder (a missing folder is an empty list; unreadable files are skipped). */
export async function listRecords(stateDir: string): Promise<RedirectRecord[]> {
  let names: string[]
  try {
    names = await readdir(stateDir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw error
  }

  const records: RedirectRecord[] = []
  for (const name of names.filter((file) => file.endsWith('.json')).sort()) {
    try {
      const record = await readJsonFile<RedirectRecord>(path.join(stateDir, name))
      if (record?.add) {
        parseInpodMessage(record.add as unknown as Record<string, unknown>)
        records.push(record)
      }
    } catch {
      // a torn or foreign file is not a workload
    }
  }

  return records
}

// The configuration as the Kubernetes store publishes it, derived from API objects: pure functions, no
// I/O. Custom resources give the configuration kinds (their `.spec` is the resource value); identity
// Secrets give the `identity` summaries and the revocations of deleted identities. Every derived entry
// remembers the object it came from and that object's resourceVersion, so a delta can be cut at any
// revision, not only at the ones this replica happened to see.
import {type Change, type ConfigSnapshot, emptySnapshot, RESOURCE_KINDS, type ResourceKind, resourceKey, type ResourceKinds} from '../../config/types.js'
import {CRD_KINDS, type CrdKind, KEY_ANNOTATION, objectNameOf} from '../../kube/crds.js'
import {validateSnapshot} from '../../proxy/state/state.js'
import type {StoredIdentity} from './kube-identities.js'

/** A custom resource as listed. */
export interface CustomObject {
  metadata?: {annotations?: Record<string, string>; creationTimestamp?: Date | string; name?: string; resourceVersion?: string; uid?: string}
  spec?: Record<string, unknown>
}

export interface ViewEntry {
  /** canonical JSON of the value, for comparison */
  json: string
  /** the resourceVersion of the source object: the value has not changed since then */
  rv: number
  /** uid of the object the value comes from */
  source: string
  value: unknown
}

export type ConfigView = Record<ResourceKind, Map<string, ViewEntry>>

/** A change with the revision it happened at, when known (deletes: unknown). */
export type TaggedChange = Change & {rv?: number}

export interface DeriveInput {
  custom: Record<CrdKind, CustomObject[]>
  identities: StoredIdentity[]
}

export interface Rejected {
  kind: ResourceKind
  object: string
  problem: string
}

export function emptyView(): ConfigView {
  return Object.fromEntries(RESOURCE_KINDS.map((kind) => [kind, new Map()])) as ConfigView
}

/** JSON with sorted object keys: equal values give equal text whatever order the API server keeps. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return item
    return Object.fromEntries(Object.entries(item as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  })
}

/** The resource value a custom resource's spec stands for, normalized, or a problem in words. */
export function valueOfSpec(kind: CrdKind, spec: Record<string, unknown> | undefined): {problem: string} | {value: ResourceKinds[CrdKind]} {
  if (!spec || typeof spec !== 'object') return {problem: 'it has no spec'}
  const value: Record<string, unknown> = {...spec}
  if (kind === 'agent') value.hbone ??= ''
  if (kind === 'revocation') {
    if (typeof value.serial === 'string') value.serial = value.serial.toUpperCase()
    value.identity ??= ''
    value.spiffe ??= ''
  }

  try {
    validateSnapshot({[kind]: {probe: value}})
  } catch (error) {
    return {problem: (error as Error).message.replace('invalid ' + kind + ' "probe": ', '')}
  }

  return {value: value as unknown as ResourceKinds[CrdKind]}
}

const createdAt = (object: CustomObject): string => {
  const stamp = object.metadata?.creationTimestamp
  return stamp instanceof Date ? stamp.toISOString() : (stamp ?? '')
}

/**
 * Which object speaks for a key several objects claim (a kubectl-made copy beside ours): the one named
 * after the key, else the oldest. Every replica picks the same.
 */
function prefer(key: string, a: CustomObject, b: CustomObject): CustomObject {
  const canonical = objectNameOf(key)
  if ((a.metadata?.name === canonical) !== (b.metadata?.name === canonical)) return a.metadata?.name === canonical ? a : b
  const order = createdAt(a).localeCompare(createdAt(b)) || (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? '')
  return order <= 0 ? a : b
}

function entry(value: unknown, rv: string | undefined, source: string | undefined): ViewEntry {
  return {json: canonicalJson(value), rv: Number(rv), source: source ?? '', value}
}

/** The configuration the objects describe, and the objects that describe nothing valid. */
export function deriveView(input: DeriveInput): {rejected: Rejected[]; view: ConfigView} {
  const view = emptyView()
  const rejected: Rejected[] = []
  for (const kind of CRD_KINDS) {
    const winners = new Map<string, {object: CustomObject; value: unknown}>()
    for (const object of input.custom[kind]) {
      const parsed = valueOfSpec(kind, object.spec)
      if ('problem' in parsed) {
        rejected.push({kind, object: object.metadata?.name ?? '?', problem: parsed.problem})
        continue
      }

      const key = resourceKey(kind, parsed.value)
      const annotated = object.metadata?.annotations?.[KEY_ANNOTATION]
      if (annotated !== undefined && annotated !== key) {
        rejected.push({kind, object: object.metadata?.name ?? '?', problem: `its ${KEY_ANNOTATION} annotation says "${annotated}" but its spec is "${key}"`})
      }

      const current = winners.get(key)
      if (!current || prefer(key, current.object, object) === object) winners.set(key, {object, value: parsed.value})
    }

    for (const [key, {object, value}] of winners) view[kind].set(key, entry(value, object.metadata?.resourceVersion, object.metadata?.uid))
  }

  for (const {doc, resourceVersion, uid} of input.identities) {
    if (doc.status !== 'revoked') {
      view.identity.set(doc.name, entry({name: doc.name, roles: doc.roles, spiffe: doc.spiffe}, resourceVersion, uid))
      continue
    }

    // A deleted identity's certificates stay revoked (until the leader's sweep drops expired ones).
    // Each carries the certificate's own SPIFFE ID: a workload's, for one a node minted.
    for (const cert of doc.certs) {
      view.revocation.set(cert.serial, entry({identity: doc.name, notAfter: cert.notAfter, serial: cert.serial, spiffe: cert.spiffe ?? doc.spiffe}, resourceVersion, uid))
    }
  }

  return {rejected, view}
}

/** The changes from one view to the next, each tagged with the revision it happened at when that is known. */
export function diffViews(before: ConfigView, after: ConfigView): TaggedChange[] {
  const changes: TaggedChange[] = []
  for (const kind of RESOURCE_KINDS) {
    for (const [key, next] of after[kind]) {
      const previous = before[kind].get(key)
      if (previous?.json === next.json) continue
      // Same source object: the value is as old as the object's version. A new source (the winning
      // object changed): when it took over is unknown, so the change goes to every reader.
      const rv = previous === undefined || previous.source === next.source ? next.rv : undefined
      changes.push({key, kind, op: 'put', rv, value: next.value} as TaggedChange)
    }

    for (const key of before[kind].keys()) if (!after[kind].has(key)) changes.push({key, kind, op: 'delete'})
  }

  return changes
}

export function snapshotOf(view: ConfigView): ConfigSnapshot {
  const snapshot = emptySnapshot()
  for (const kind of RESOURCE_KINDS) {
    const table = snapshot[kind] as Record<string, unknown>
    for (const [key, item] of view[kind]) table[key] = structuredClone(item.value)
  }

  return snapshot
}

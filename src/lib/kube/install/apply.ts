// Server-side apply with field manager `ztctl`, and the questions around it: what would change (a
// server-side dry run compared with the live object), what install made (the install labels), and deleting
// it again. An apply that changes nothing is not sent, so a second install writes nothing.
import {isMissing, type KubeClient} from '../rest.js'
import {APPLY_ORDER, INSTALLED_SELECTOR, type KubeObject, objectRef} from '../manifest/objects.js'
import {collectionPath, KINDS, objectKey, objectPath} from './resources.js'

export const FIELD_MANAGER = 'ztctl'

export type Action = 'configured' | 'created' | 'deleted' | 'unchanged'

export interface Change {
  action: Action
  /** the object as applied (or as the server's dry run says it would be) */
  after?: KubeObject
  before?: KubeObject
  /** true when the server could not check it (its namespace does not exist yet) */
  unchecked?: boolean
  ref: string
}

/** What applying `object` would do: the live object against the server's dry-run result. */
export async function planApply(kube: KubeClient, object: KubeObject, options: {namespaceMissing?: boolean} = {}): Promise<Change> {
  const ref = objectRef(object)
  const before = await readObject(kube, object)
  if (options.namespaceMissing && !before) return {action: 'created', after: object, ref, unchecked: true}
  const after = await ssa(kube, object, true)
  if (!before) return {action: 'created', after, ref}
  return {action: sameObject(before, after) ? 'unchanged' : 'configured', after, before, ref}
}

/** Apply for real (only called for a change the plan found). */
export async function applyObject(kube: KubeClient, object: KubeObject): Promise<KubeObject> {
  return ssa(kube, object, false)
}

async function ssa(kube: KubeClient, object: KubeObject, dryRun: boolean): Promise<KubeObject> {
  return kube.request<KubeObject>('PATCH', objectPath(object), {
    body: object,
    contentType: 'application/apply-patch+yaml',
    query: {dryRun: dryRun ? 'All' : undefined, fieldManager: FIELD_MANAGER, force: true},
    what: `${dryRun ? 'dry-run' : 'apply'} ${objectRef(object)}`,
  })
}

export async function readObject(kube: KubeClient, object: Pick<KubeObject, 'kind' | 'metadata'>): Promise<KubeObject | undefined> {
  try {
    return await kube.request<KubeObject>('GET', objectPath(object), {what: `read ${objectRef(object)}`})
  } catch (error) {
    if (isMissing(error)) return undefined
    throw error
  }
}

/** Every object an install made, of every kind install renders, in apply order. */
export async function listInstalled(kube: KubeClient): Promise<KubeObject[]> {
  const lists = await Promise.all(APPLY_ORDER.map(async (kind) => {
    const list = await kube.request<{items: KubeObject[]}>('GET', collectionPath(kind), {query: {labelSelector: INSTALLED_SELECTOR}, what: `list ${KINDS[kind].plural}`})
    return list.items.map((item) => ({...item, apiVersion: KINDS[kind].apiVersion, kind}))
  }))
  return lists.flat()
}

/**
 * Delete an object; workloads in the foreground, so that when the object is gone its pods are gone too.
 * Returns false when it was already gone.
 */
export async function deleteObject(kube: KubeClient, object: Pick<KubeObject, 'kind' | 'metadata'>): Promise<boolean> {
  const foreground = object.kind === 'Deployment' || object.kind === 'DaemonSet'
  try {
    await kube.request('DELETE', objectPath(object), {
      body: {apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: foreground ? 'Foreground' : 'Background'},
      what: `delete ${objectRef(object)}`,
    })
    return true
  } catch (error) {
    if (isMissing(error)) return false
    throw error
  }
}

/** Wait until the objects no longer exist (finalizers done, pods of foreground deletions gone). */
export async function waitGone(kube: KubeClient, objects: readonly Pick<KubeObject, 'kind' | 'metadata'>[], deadline: number, onWait?: (left: string[]) => void): Promise<string[]> {
  let left = [...objects]
  while (left.length > 0) {
    const present = await Promise.all(left.map(async (object) => (await readObject(kube, object)) !== undefined))
    left = left.filter((_, index) => present[index])
    if (left.length === 0 || Date.now() > deadline) break
    onWait?.(left.map((object) => objectRef(object)))
    await sleep(250)
  }

  return left.map((object) => objectRef(object))
}

/** Delete order: the reverse of apply order (workloads before their RBAC, namespaces and CRDs last). */
export function deleteOrder<T extends Pick<KubeObject, 'kind' | 'metadata'>>(objects: readonly T[]): T[] {
  const rank = (kind: string) => (APPLY_ORDER as readonly string[]).indexOf(kind)
  return [...objects].sort((a, b) => rank(b.kind) - rank(a.kind) || objectKey(a).localeCompare(objectKey(b)))
}

// Fields the server owns: they differ between a live object and any apply of it without meaning a change.
const SERVER_METADATA = ['creationTimestamp', 'generation', 'managedFields', 'resourceVersion', 'selfLink', 'uid']
const SERVER_ANNOTATIONS = ['deployment.kubernetes.io/revision', 'deprecated.daemonset.template.generation']

/** The object without what the server adds or keeps on its own (for comparing and diffing). */
export function comparable(object: KubeObject): KubeObject {
  const copy = structuredClone(object)
  delete copy.status
  for (const field of SERVER_METADATA) delete copy.metadata[field]
  if (copy.metadata.annotations) {
    for (const annotation of SERVER_ANNOTATIONS) delete copy.metadata.annotations[annotation]
    if (Object.keys(copy.metadata.annotations).length === 0) delete copy.metadata.annotations
  }

  return copy
}

export function sameObject(a: KubeObject, b: KubeObject): boolean {
  return canonical(comparable(a)) === canonical(comparable(b))
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    item && typeof item === 'object' && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item as Record<string, unknown>).sort(([x], [y]) => x.localeCompare(y)))
      : item)
}

// Not unref'ed: between two polls this timer is all that keeps the CLI waiting.
export const sleep = (ms: number) => new Promise<void>((resolve) => {
  setTimeout(resolve, ms)
})

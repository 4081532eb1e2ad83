// `ztctl uninstall`: delete what install made (found by its labels, in reverse dependency order, workloads
// with their pods) and nothing else. Kept unless purging: the custom resource definitions (deleting them
// deletes the mesh's configuration) and a namespace that holds the controller's run-time state (CA,
// identities, Lease) or objects someone else put there.
import type {Home} from '../../home/home.js'
import {forgetKubeContexts} from '../controller-context.js'
import type {KubeClient} from '../rest.js'
import {COMPONENT_LABEL, COMPONENT_ORDER, type Component, type KubeObject, objectRef} from '../manifest/objects.js'
import {deleteObject, deleteOrder, listInstalled, waitGone} from './apply.js'
import {namespaceContents, runtimeObjects} from './state.js'

export interface UninstallOptions {
  /** the CLI home whose contexts for this installation are deleted at the end */
  context?: {home: Home}
  deadline: number
  kube: KubeClient
  /** the install namespace (its run-time objects go with --purge even when the namespace is not ours) */
  namespace: string
  onEvent: (event: UninstallEvent) => void
  purge: boolean
}

export type UninstallEvent = {component: Component; objects: string[]; type: 'removed' | 'start'} | {message: string; type: 'wait'}

export interface UninstallResult {
  /** the ztctl contexts deleted (they reached the controller just removed) */
  contexts: string[]
  deleted: string[]
  /** what was kept, and why */
  kept: {object: string; reason: string}[]
}

export async function uninstall(options: UninstallOptions): Promise<UninstallResult> {
  const {kube, purge} = options
  const installed = await listInstalled(kube)
  const kept: UninstallResult['kept'] = []
  const doomed: KubeObject[] = []
  for (const object of installed) {
    if (object.kind === 'CustomResourceDefinition' && !purge) {
      kept.push({object: objectRef(object), reason: 'custom resource definitions keep the mesh configuration'})
      continue
    }

    if (object.kind === 'Namespace' && !purge) {
      const contents = await namespaceContents(kube, object.metadata.name)
      if (contents.kept.length > 0) {
        kept.push({object: objectRef(object), reason: `it holds ${contents.kept.slice(0, 5).join(', ')}${contents.kept.length > 5 ? ` and ${contents.kept.length - 5} more` : ''}`})
        continue
      }
    }

    doomed.push(object)
  }

  if (purge && !doomed.some((object) => object.kind === 'Namespace' && object.metadata.name === options.namespace)) {
    // The namespace is not ours to delete: take the controller's run-time objects out of it one by one.
    doomed.push(...(await runtimeObjects(kube, options.namespace)))
  }

  const ordered = deleteOrder(doomed)
  const byComponent = new Map<Component, KubeObject[]>()
  for (const object of ordered) {
    const component = (object.metadata.labels?.[COMPONENT_LABEL] ?? 'core') as Component
    byComponent.set(component, [...(byComponent.get(component) ?? []), object])
  }

  // Workloads first (their pods stop), then what they needed: the component order backwards.
  for (const component of [...COMPONENT_ORDER].reverse()) {
    const objects = byComponent.get(component) ?? []
    if (objects.length === 0) continue
    options.onEvent({component, objects: objects.map((object) => objectRef(object)), type: 'start'})
    for (const object of objects) await deleteObject(kube, object)
    const left = await waitGone(kube, objects, options.deadline, (waiting) => options.onEvent({message: `waiting for ${waiting.join(', ')} to go away`, type: 'wait'}))
    if (left.length > 0) kept.push(...left.map((object) => ({object, reason: 'still being deleted (timeout): check its finalizers'})))
    options.onEvent({component, objects: objects.map((object) => objectRef(object)), type: 'removed'})
  }

  const contexts = options.context ? await forgetKubeContexts(options.context.home, {kubeContext: kube.context, namespace: options.namespace}) : []
  return {contexts, deleted: ordered.map((object) => objectRef(object)), kept}
}

// `ztctl install`: apply a rendering component by component in dependency order (custom resources →
// Established → namespace → RBAC → config → controller → CNI → node agents → demo apps), wait for each
// component to be ready before the next, then prune what the rendering no longer has. Objects whose server
// dry run matches the live object are not applied, so a second install with the same values changes
// nothing. `dryRun` stops after the plan: what would be created, changed and pruned, checked by the server.
// The controller is ready once it serves AND its leader has published the CA bundle and the admin identity:
// node agents mount the first, and the ztctl context install writes at its end uses the second.
import {ExitCode, ZtError} from '../../errors.js'
import type {Home} from '../../home/home.js'
import {upsertKubeContext} from '../controller-context.js'
import {RUNTIME_OBJECTS} from '../objects.js'
import type {KubeClient} from '../rest.js'
import {COMPONENT_ORDER, type Component, INSTALL_LABEL, type KubeObject, objectRef, type Rendered} from '../manifest/objects.js'
import type {Rendering} from '../manifest/render.js'
import {applyObject, type Change, deleteObject, deleteOrder, listInstalled, planApply, readObject, sleep, waitGone} from './apply.js'
import {objectKey} from './resources.js'
import {waitRollout} from './rollout.js'
import {namespaceContents} from './state.js'

export const COMPONENT_TITLES: Record<Component, string> = {
  cni: 'CNI',
  controller: 'Controller',
  core: 'Core',
  demo: 'Demo apps',
  'host-pod': 'Host pod',
  hub: 'Hub',
  'node-agent': 'Node agents',
}

export type InstallEvent =
  | {component: Component; message: string; type: 'wait'}
  | {component: Component; error: ZtError; type: 'failed'}
  | {changes: Change[]; component: Component; type: 'done'}
  | {component: Component; objects: string[]; type: 'start'}
  | {message: string; type: 'note'}
  | {pruned: Change[]; type: 'pruned'}

export interface InstallOptions {
  dryRun?: boolean
  kube: KubeClient
  onEvent: (event: InstallEvent) => void
  readinessTimeoutMs: number
  rendering: Rendering
  /** write (and make current) a ztctl context of kind kubernetes for the installed controller */
  context?: {home: Home; kubeconfig?: string}
}

export interface InstallResult {
  changes: Change[]
  /** nothing was created, changed or pruned */
  unchanged: boolean
  namespace: string
  profile: string
  pruned: Change[]
  /** the ztctl context written for the installed controller */
  context?: string
}

export async function install(options: InstallOptions): Promise<InstallResult> {
  const {kube, onEvent, rendering} = options
  const deadline = () => Date.now() + options.readinessTimeoutMs
  const objects = await withoutForeignNamespaces(kube, rendering.objects, options.dryRun ? undefined : deadline(), onEvent)
  const missingNamespaces = options.dryRun ? await absentNamespaces(kube, objects) : new Set<string>()
  const changes: Change[] = []
  for (const component of COMPONENT_ORDER) {
    const items = objects.filter((item) => item.component === component)
    if (items.length === 0) continue
    onEvent({component, objects: items.map((item) => objectRef(item.object)), type: 'start'})
    const componentChanges: Change[] = []
    try {
      for (const {object} of items) {
        const change = await planApply(kube, object, {namespaceMissing: missingNamespaces.has(object.metadata.namespace ?? '')})
        if (!options.dryRun && change.action !== 'unchanged') change.after = await applyObject(kube, object)
        componentChanges.push(change)
      }

      if (!options.dryRun) {
        const onWait = (message: string) => onEvent({component, message, type: 'wait'})
        await waitReady(kube, items, deadline(), onWait)
        if (component === 'controller') await waitControllerState(kube, rendering.namespace, deadline(), onWait)
      }
    } catch (error) {
      const failure = ZtError.is(error) ? error : new ZtError('ZT_ERR_INSTALL', (error as Error).message, {cause: error})
      onEvent({component, error: failure, type: 'failed'})
      throw incomplete(component, failure)
    }

    changes.push(...componentChanges)
    onEvent({changes: componentChanges, component, type: 'done'})
  }

  const pruned = await prune(kube, objects, options.dryRun === true, deadline())
  if (pruned.length > 0) onEvent({pruned, type: 'pruned'})
  const context = options.context && !options.dryRun
    ? await upsertKubeContext(options.context.home, {kubeconfig: options.context.kubeconfig, kubeContext: kube.context, namespace: rendering.namespace})
    : undefined
  return {
    changes, context: context?.name, namespace: rendering.namespace, profile: rendering.profile, pruned,
    unchanged: pruned.length === 0 && changes.every((change) => change.action === 'unchanged'),
  }
}

/** The 'failed' event said what and why; this error says what it means and where to look. */
function incomplete(component: Component, failure: ZtError): ZtError {
  return new ZtError('ZT_ERR_INSTALL_INCOMPLETE', `installation incomplete: ${COMPONENT_TITLES[component]} is not ready (what follows it in the dependency order was not installed)`, {
    cause: failure, details: failure.details, exit: ExitCode.failure, suggestion: `${failure.suggestion ?? 'ztctl verify-install'}; fix the values and run install again`,
  })
}

/** What install reports to machines (-o json/yaml): each object's action, and where the context points. */
export function installSummary(result: InstallResult, dryRun: boolean) {
  return {
    changes: [...result.changes, ...result.pruned].map((change) => ({action: change.action, object: change.ref, ...(change.unchecked ? {unchecked: true} : {})})),
    context: result.context, dryRun, namespace: result.namespace, profile: result.profile, unchanged: result.unchanged,
  }
}

/** The leader writes ConfigMap ztctl-ca-root and Secret ztctl-admin within seconds of winning the Lease (a new replica may wait out an old holder's). */
async function waitControllerState(kube: KubeClient, namespace: string, deadline: number, onWait: (message: string) => void): Promise<void> {
  const wanted = [{kind: 'ConfigMap', name: RUNTIME_OBJECTS.caRootConfigMap}, {kind: 'Secret', name: RUNTIME_OBJECTS.adminSecret}]
  for (const {kind, name} of wanted) {
    while (!(await readObject(kube, {kind, metadata: {name, namespace}}))) {
      if (Date.now() > deadline) {
        throw new ZtError('ZT_ERR_NOT_READY', `the controller serves but its leader has not written ${kind} ${namespace}/${name} (readiness timeout)`, {
          exit: ExitCode.failure, suggestion: `look at the controller's log: kubectl -n ${namespace} logs deploy/ztctl-controller; and who holds the Lease: kubectl -n ${namespace} get lease ${RUNTIME_OBJECTS.lease} -o yaml`,
        })
      }

      onWait(`waiting for the controller's leader to write ${kind} ${namespace}/${name}`)
      await sleep(250)
    }
  }
}

/** CRDs must be Established before anything may use them; workloads must be rolled out. */
async function waitReady(kube: KubeClient, items: Rendered[], deadline: number, onWait: (message: string) => void): Promise<void> {
  for (const {object} of items) {
    if (object.kind === 'CustomResourceDefinition') await waitEstablished(kube, object, deadline, onWait)
  }

  for (const {object} of items) {
    if (object.kind !== 'Deployment' && object.kind !== 'DaemonSet') continue
    await waitRollout(kube, object, deadline, (message) => onWait(`waiting for ${objectRef(object)}: ${message}`))
  }
}

async function waitEstablished(kube: KubeClient, crd: KubeObject, deadline: number, onWait: (message: string) => void): Promise<void> {
  while (true) {
    const live = await readObject(kube, crd)
    const conditions = ((live?.status as {conditions?: {status: string; type: string; message?: string}[]} | undefined)?.conditions) ?? []
    if (conditions.some((condition) => condition.type === 'Established' && condition.status === 'True')) return
    const refused = conditions.find((condition) => condition.type === 'NamesAccepted' && condition.status === 'False')
    if (refused || Date.now() > deadline) {
      throw new ZtError('ZT_ERR_NOT_READY', `${objectRef(crd)} is not Established${refused ? `: ${refused.message}` : ' (readiness timeout)'}`, {
        exit: ExitCode.failure, suggestion: `kubectl describe crd ${crd.metadata.name}`,
      })
    }

    onWait(`waiting for ${objectRef(crd)} to be Established`)
    await sleep(100)
  }
}

/**
 * A namespace install did not make (it existed before, without our label) is used, not taken over: it is not
 * applied, so uninstall never deletes it. A namespace still terminating (a recent uninstall --purge) is
 * waited for.
 */
async function withoutForeignNamespaces(kube: KubeClient, objects: Rendered[], deadline: number | undefined, onEvent: (event: InstallEvent) => void): Promise<Rendered[]> {
  const kept: Rendered[] = []
  for (const item of objects) {
    if (item.object.kind !== 'Namespace') {
      kept.push(item)
      continue
    }

    let live = await readObject(kube, item.object)
    while (live?.metadata.deletionTimestamp && deadline !== undefined) {
      if (Date.now() > deadline) {
        throw new ZtError('ZT_ERR_NAMESPACE_TERMINATING', `namespace ${item.object.metadata.name} is still being deleted`, {
          exit: ExitCode.conflict, suggestion: `wait for it (kubectl get namespace ${item.object.metadata.name}) and run install again`,
        })
      }

      onEvent({component: item.component, message: `waiting for namespace ${item.object.metadata.name} to finish terminating`, type: 'wait'})
      await sleep(500)
      live = await readObject(kube, item.object)
    }

    if (live && !live.metadata.deletionTimestamp && live.metadata.labels?.[INSTALL_LABEL] === undefined) {
      onEvent({message: `namespace ${item.object.metadata.name} exists and was not made by ztctl: using it as it is`, type: 'note'})
      continue
    }

    kept.push(item)
  }

  return kept
}

async function absentNamespaces(kube: KubeClient, objects: Rendered[]): Promise<Set<string>> {
  const names = [...new Set(objects.map((item) => item.object.metadata.namespace).filter((ns): ns is string => Boolean(ns)))]
  const present = await Promise.all(names.map(async (name) => (await readObject(kube, {kind: 'Namespace', metadata: {name}})) !== undefined))
  return new Set(names.filter((_, index) => !present[index]))
}

/**
 * Delete what an earlier install made and this rendering no longer has. Never custom resource definitions
 * (that would delete the mesh's configuration: only `uninstall --purge` does), never a namespace that holds
 * run-time state or objects of others.
 */
async function prune(kube: KubeClient, objects: Rendered[], dryRun: boolean, deadline: number): Promise<Change[]> {
  const wanted = new Set(objects.map((item) => objectKey(item.object)))
  const stale = deleteOrder((await listInstalled(kube)).filter((object) => !wanted.has(objectKey(object)) && object.kind !== 'CustomResourceDefinition'))
  const pruned: Change[] = []
  for (const object of stale) {
    if (object.kind === 'Namespace') {
      const contents = await namespaceContents(kube, object.metadata.name)
      if (contents.kept.length > 0) continue
    }

    if (!dryRun) await deleteObject(kube, object)
    pruned.push({action: 'deleted', before: object, ref: objectRef(object)})
  }

  if (!dryRun) await waitGone(kube, pruned.map((change) => change.before!), deadline)
  return pruned
}

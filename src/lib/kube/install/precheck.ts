// `ztctl precheck` (istioctl x precheck): can this installation go into this cluster? The API server's
// version, the rights to create what install renders, an installation already there (an upgrade) or objects
// of the same names that install did not make (it would take them over), a namespace still terminating,
// Ready nodes, the image on them when it is never pulled, and (asked on each node by a short-lived pod) the
// CNI directories the CNI agent needs. Each finding says what to do.
import type {KubeClient} from '../rest.js'
import {imageOf, type InstallValues, type KubeObject, objectRef, ORIGIN_LABEL} from '../manifest/objects.js'
import type {Rendering} from '../manifest/render.js'
import {readObject} from './apply.js'
import {probeNodeCni} from './node-probe.js'
import {KINDS} from './resources.js'
import {findInstallation} from './state.js'

export interface Finding {
  fix?: string
  level: 'error' | 'info' | 'ok' | 'warning'
  message: string
}

const MINIMUM = {major: 1, minor: 20} // projected ServiceAccount tokens with an audience are GA from 1.20

export async function precheck(kube: KubeClient, rendering: Rendering): Promise<Finding[]> {
  const values = rendering.values as unknown as InstallValues
  const findings = [await checkVersion(kube), ...(await checkPermissions(kube, rendering)), ...(await checkExisting(kube, rendering))]
  findings.push(...(await checkNodes(kube, rendering, values)))
  return findings
}

async function checkVersion(kube: KubeClient): Promise<Finding> {
  const version = await kube.request<{gitVersion: string; major: string; minor: string}>('GET', '/version', {what: 'read the server version'})
  const [major, minor] = [Number.parseInt(version.major, 10), Number.parseInt(version.minor, 10)]
  const ok = major > MINIMUM.major || (major === MINIMUM.major && minor >= MINIMUM.minor)
  return ok
    ? {level: 'ok', message: `Kubernetes ${version.gitVersion} (ztctl needs ${MINIMUM.major}.${MINIMUM.minor} or later)`}
    : {fix: 'upgrade the cluster', level: 'error', message: `Kubernetes ${version.gitVersion} is too old: ztctl needs ${MINIMUM.major}.${MINIMUM.minor} or later (projected ServiceAccount tokens with an audience)`}
}

async function checkPermissions(kube: KubeClient, rendering: Rendering): Promise<Finding[]> {
  const wanted = new Map<string, {group: string; namespace?: string; resource: string}>()
  for (const {object} of rendering.objects) {
    const info = KINDS[object.kind]
    const group = info.apiVersion.includes('/') ? info.apiVersion.split('/')[0] : ''
    wanted.set(`${info.plural}/${object.metadata.namespace ?? ''}`, {group, namespace: object.metadata.namespace, resource: info.plural})
  }

  const denied: string[] = []
  await Promise.all([...wanted.values()].flatMap((target) => ['create', 'patch', 'delete'].map(async (verb) => {
    const review = await kube.request<{status: {allowed: boolean}}>('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
      body: {apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: {resourceAttributes: {...target, verb}}},
      what: 'ask the API server what this user may do',
    })
    if (!review.status.allowed) denied.push(`${verb} ${target.resource}${target.namespace ? ` in ${target.namespace}` : ''}`)
  })))
  if (denied.length === 0) return [{level: 'ok', message: `Permission to install: context ${kube.context} may create, change and delete everything install renders`}]
  return [{
    fix: 'use a cluster-admin context (--kube-context), or have these granted', level: 'error',
    message: `Context ${kube.context} may not: ${denied.sort().join(', ')}`,
  }]
}

async function checkExisting(kube: KubeClient, rendering: Rendering): Promise<Finding[]> {
  const findings: Finding[] = []
  const installed = await findInstallation(kube)
  if (installed) {
    const same = installed.namespace === rendering.namespace
    findings.push(same
      ? {level: 'info', message: `ztctl ${installed.version} (profile ${installed.profile}) is installed in ${installed.namespace}: install upgrades it and prunes what the new values drop`}
      : {fix: `uninstall it first (ztctl uninstall -n ${installed.namespace}), or install into ${installed.namespace}`, level: 'error', message: `ztctl is already installed in namespace ${installed.namespace}: one installation per cluster`})
  }

  const taken: string[] = []
  for (const {object} of rendering.objects) {
    const live = await readObject(kube, object)
    if (!live) continue
    if (object.kind === 'Namespace') {
      if (live.metadata.deletionTimestamp) findings.push({fix: 'wait until it is gone (kubectl get namespace)', level: 'error', message: `Namespace ${object.metadata.name} is still being deleted`})
      else if (live.metadata.labels?.[ORIGIN_LABEL] !== 'install') findings.push({level: 'info', message: `Namespace ${object.metadata.name} exists: install uses it as it is and uninstall leaves it`})
      continue
    }

    // The ztctl.io custom resource definitions are ztctl's whoever applied them (a kept install, the store's tests).
    if (live.metadata.labels?.[ORIGIN_LABEL] !== 'install' && object.kind !== 'CustomResourceDefinition') taken.push(objectRef(object))
  }

  if (taken.length > 0) {
    findings.push({fix: 'remove them, or install into another namespace (--set namespace=NAME)', level: 'error', message: `Not made by ztctl install, install would take them over: ${taken.join(', ')}`})
  } else if (!installed) {
    findings.push({level: 'ok', message: 'No ztctl installation and no object of the same names: a fresh install'})
  }

  return findings
}

async function checkNodes(kube: KubeClient, rendering: Rendering, values: InstallValues): Promise<Finding[]> {
  const nodes = (await kube.request<{items: KubeObject[]}>('GET', '/api/v1/nodes', {what: 'list the nodes'})).items
  const ready = nodes.filter((node) => ((node.status as {conditions?: {status: string; type: string}[]}).conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'))
  if (ready.length === 0) return [{fix: 'add nodes, or wait until they are Ready (kubectl get nodes)', level: 'error', message: `No Ready node (of ${nodes.length}): no controller or node agent could run`}]
  const findings: Finding[] = [{level: 'ok', message: `${ready.length} Ready node${ready.length > 1 ? 's' : ''}: ${ready.map((node) => node.metadata.name).join(', ')}`}]
  const images = [...new Set(rendering.objects.flatMap(({object}) => workloadImages(object)))]
  for (const image of images) {
    const without = ready.filter((node) => !hasImage(node, image))
    if (without.length === 0) findings.push({level: 'ok', message: `Image ${image} is on every Ready node`})
    else if (values.image.pullPolicy === 'Never') {
      findings.push({fix: 'import it (`npm run image`, then `ctr -n k8s.io images import` on each node), or set image.pullPolicy=IfNotPresent', level: 'error', message: `Image ${image} is not on ${without.map((node) => node.metadata.name).join(', ')} and image.pullPolicy is Never`})
    } else findings.push({level: 'warning', message: `Image ${image} is not on ${without.map((node) => node.metadata.name).join(', ')} yet: the nodes will pull it`})
  }

  if (values.cni.enabled) findings.push(...(await checkCniDirs(kube, values, ready)))
  return findings
}

/** Ask each node (a short-lived pod with the directories mounted) whether it has what the CNI agent needs. */
async function checkCniDirs(kube: KubeClient, values: InstallValues, nodes: KubeObject[]): Promise<Finding[]> {
  const image = imageOf(values, values.cni.image)
  const withImage = values.image.pullPolicy === 'Never' ? nodes.filter((node) => hasImage(node, image)) : nodes
  const skipped = nodes.filter((node) => !withImage.includes(node)).map((node) => node.metadata.name)
  const findings: Finding[] = skipped.length > 0 ? [{level: 'warning', message: `CNI directories not checked on ${skipped.join(', ')}: the image is not there to check with`}] : []
  const dirs = `cni.confDir ${values.cni.confDir}, cni.binDir ${values.cni.binDir}`
  for (const result of await probeNodeCni(kube, values, withImage.map((node) => node.metadata.name))) {
    if (result.unknown) findings.push({level: 'warning', message: `CNI directories of node ${result.node} could not be checked: ${result.unknown}`})
    else if (result.problems.length > 0) {
      findings.push({fix: `set cni.confDir / cni.binDir to where this node's container runtime keeps them (${dirs}), or disable the CNI agent (--set cni.enabled=false)`, level: 'error', message: `Node ${result.node}: ${result.problems.join('; ')}`})
    } else findings.push({level: 'ok', message: `Node ${result.node}: CNI configuration ${result.primary} in ${values.cni.confDir}, plugins in ${values.cni.binDir}`})
  }

  return findings
}

const hasImage = (node: KubeObject, image: string) => ((node.status as {images?: {names?: string[]}[]}).images ?? []).some((entry) => entry.names?.some((name) => sameImage(name, image)))

function workloadImages(object: KubeObject): string[] {
  if (object.kind !== 'Deployment' && object.kind !== 'DaemonSet') return []
  const containers = (object.spec as {template: {spec: {containers: {image: string}[]}}}).template.spec.containers
  return containers.map((container) => container.image)
}

/** Node status lists images as the runtime names them (docker.io/library/busybox:1.36 for busybox:1.36). */
function sameImage(listed: string, wanted: string): boolean {
  return listed === wanted || listed === `docker.io/${wanted}` || listed === `docker.io/library/${wanted}`
}

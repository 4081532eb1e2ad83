// Values → the objects of an installation, sorted in apply order, and their deterministic YAML.
import {crdObjects} from '../crds.js'
import {renderCni} from './cni.js'
import {renderController} from './controller.js'
import {renderDemo} from './demo.js'
import {renderHostPod} from './host-pod.js'
import {renderHub} from './hub.js'
import {renderNodeAgent} from './node-agent.js'
import {INSTALL_STATE_NAME, type InstallValues, installLabels, type KubeObject, type Rendered, sortRendered} from './objects.js'
import type {ResolvedValues} from './profiles.js'

export interface Rendering extends ResolvedValues {
  namespace: string
  objects: Rendered[]
}

export async function renderInstallation(resolved: ResolvedValues, version: string): Promise<Rendering> {
  const values = resolved.values as unknown as InstallValues
  const {stringify} = await import('yaml')
  const ns = values.namespace
  const core = (object: KubeObject): Rendered => ({component: 'core', object})
  const objects: Rendered[] = [
    ...crdObjects(installLabels('core')).map((crd) => core(crd as KubeObject)),
    core({apiVersion: 'v1', kind: 'Namespace', metadata: {labels: installLabels('core'), name: ns}}),
    // What was installed, for verify-install and the next install (no timestamp: a re-run changes nothing).
    core({
      apiVersion: 'v1',
      data: {profile: resolved.profile, 'values.yaml': stringify(resolved.values, {lineWidth: 0}), version},
      kind: 'ConfigMap',
      metadata: {labels: installLabels('core'), name: INSTALL_STATE_NAME, namespace: ns},
    }),
    ...renderController(values),
    ...renderHub(values),
    ...renderCni(values),
    ...renderNodeAgent(values),
    ...renderHostPod(values),
    ...renderDemo(values),
  ]
  return {...resolved, namespace: ns, objects: sortRendered(objects)}
}

/** Multi-document YAML, the same bytes for the same values. */
export async function toYaml(objects: readonly KubeObject[]): Promise<string> {
  const {stringify} = await import('yaml')
  return objects.map((object) => stringify(object, {aliasDuplicateObjects: false, lineWidth: 0})).join('---\n')
}

// The objects the controller-in-the-cluster tests run are the installer's own rendering
// (src/lib/kube/manifest/: names, ports, args, env, volumes and RBAC as K8S-CONTRACT.md fixes them), for a
// namespace of the test's: these tests start exactly the pods `ztctl install` applies, one component at a
// time and without the installer's waits, to time each part on its own.
import {type Cluster, type ClusterNode, nodeSettings} from '../helpers/k8s.js'
import {renderController} from '../../src/lib/kube/manifest/controller.js'
import {renderNodeAgent} from '../../src/lib/kube/manifest/node-agent.js'
import type {InstallValues, KubeObject} from '../../src/lib/kube/manifest/objects.js'
import {resolveValues} from '../../src/lib/kube/manifest/profiles.js'

/** The ambient profile's values for NAMESPACE, with the image IMAGE (`repository:tag`), on the harness node NODE. */
export async function installValues(namespace: string, image: string, node: ClusterNode): Promise<InstallValues> {
  const colon = image.lastIndexOf(':')
  const {values} = await resolveValues({
    namespace, profile: 'ambient', set: [`image.repository=${image.slice(0, colon)}`, `image.tag=${image.slice(colon + 1)}`, ...nodeSettings(node)], version: '0.0.0',
  })
  return values as unknown as InstallValues
}

/** The controller: ServiceAccount, Role + ClusterRole and their bindings, Service, Deployment. */
export const controllerObjects = (values: InstallValues): KubeObject[] => renderController(values).map((item) => item.object)

/** The node agent: ServiceAccount, DaemonSet. */
export const nodeAgentObjects = (values: InstallValues): KubeObject[] => renderNodeAgent(values).map((item) => item.object)

/** Create every object (they are new: the namespace is the test's own). */
export async function createObjects(cluster: Cluster, objects: KubeObject[]): Promise<void> {
  for (const object of objects) await cluster.objects.create(object as never)
}

// What is installed (the `ztctl-install` ConfigMap: profile, values, version) and what in the install
// namespace is run-time state that uninstall and prune must keep: the controller's CA, identities, Lease,
// and the mesh's configuration as custom resources.
import {ExitCode, ZtError} from '../../errors.js'
import type {KubeClient} from '../rest.js'
import {CRD_API_VERSION, CRD_KINDS, CRD_SPECS} from '../crds.js'
import {INSTALL_STATE_NAME, INSTALLATION_SELECTOR, INSTALLED_SELECTOR, type KubeObject, ORIGIN_LABEL} from '../manifest/objects.js'
import type {ResolvedValues} from '../manifest/profiles.js'
import {checkValues} from '../manifest/values.js'

export interface Installation extends ResolvedValues {
  namespace: string
  version: string
}

/** The installation in `namespace`, or found by its label anywhere; undefined when there is none. */
export async function findInstallation(kube: KubeClient, namespace?: string): Promise<Installation | undefined> {
  const list = await kube.request<{items: KubeObject[]}>('GET', namespace ? `/api/v1/namespaces/${namespace}/configmaps` : '/api/v1/configmaps', {
    query: {fieldSelector: `metadata.name=${INSTALL_STATE_NAME}`, labelSelector: INSTALLED_SELECTOR},
    what: 'look for a ztctl installation',
  })
  const [state, ...others] = list.items
  if (!state) return undefined
  if (others.length > 0) {
    throw new ZtError('ZT_ERR_SEVERAL_INSTALLATIONS', `ztctl is installed in several namespaces: ${list.items.map((item) => item.metadata.namespace).join(', ')}`, {
      exit: ExitCode.usage, suggestion: 'pick one with -n NAMESPACE',
    })
  }

  const data = (state.data ?? {}) as Record<string, string>
  const {parse} = await import('yaml')
  return {
    namespace: state.metadata.namespace!,
    profile: data.profile ?? 'ambient',
    values: checkValues(parse(data['values.yaml'] ?? '{}'), `ConfigMap ${state.metadata.namespace}/${INSTALL_STATE_NAME}`),
    version: data.version ?? 'unknown',
  }
}

export function noInstallation(namespace?: string): ZtError {
  return new ZtError('ZT_ERR_NOT_INSTALLED', `no ztctl installation found${namespace ? ` in namespace ${namespace}` : ''}`, {
    exit: ExitCode.notFound, suggestion: 'install with `ztctl install --profile ambient`',
  })
}

export interface NamespaceContents {
  /** objects that are not install's and not Kubernetes' own: reasons to keep the namespace */
  kept: string[]
}

/** What in the namespace install did not make: run-time state and anything else someone put there. */
export async function namespaceContents(kube: KubeClient, namespace: string): Promise<NamespaceContents> {
  const ns = `/api/v1/namespaces/${namespace}`
  const notOurs = (item: KubeObject) => item.metadata.labels?.[ORIGIN_LABEL] !== 'install'
  const list = async (kind: string, path: string) => {
    const found = await kube.request<{items: KubeObject[]}>('GET', path, {what: `list ${path}`}).catch(() => ({items: [] as KubeObject[]}))
    return found.items.map((item) => ({...item, kind}))
  }

  const groups = await Promise.all([
    list('Secret', `${ns}/secrets`), list('ConfigMap', `${ns}/configmaps`),
    list('Lease', `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`), list('Service', `${ns}/services`),
    list('ServiceAccount', `${ns}/serviceaccounts`), list('Deployment', `/apis/apps/v1/namespaces/${namespace}/deployments`),
    list('DaemonSet', `/apis/apps/v1/namespaces/${namespace}/daemonsets`),
    ...CRD_KINDS.map((kind) => list(CRD_SPECS[kind].kind, `/apis/${CRD_API_VERSION}/namespaces/${namespace}/${CRD_SPECS[kind].plural}`)),
  ])
  // Kubernetes' own: the default ServiceAccount, its token Secrets and the root CA ConfigMap of every namespace.
  const kubernetesOwn = (item: KubeObject) =>
    (item.kind === 'Secret' && item.type === 'kubernetes.io/service-account-token')
    || (item.kind === 'ConfigMap' && item.metadata.name === 'kube-root-ca.crt')
    || (item.kind === 'ServiceAccount' && item.metadata.name === 'default')
  const kept = groups.flat().filter((item) => notOurs(item) && !kubernetesOwn(item)).map((item) => `${item.kind} ${item.metadata.name}`)
  return {kept}
}

/**
 * The controller's run-time objects in a namespace install did not create (a purge deletes the namespace
 * otherwise): found by the installation's labels, without install's own origin label.
 */
export async function runtimeObjects(kube: KubeClient, namespace: string): Promise<KubeObject[]> {
  const kinds = [['Secret', `/api/v1/namespaces/${namespace}/secrets`], ['ConfigMap', `/api/v1/namespaces/${namespace}/configmaps`], ['Lease', `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`]]
  const lists = await Promise.all(kinds.map(async ([kind, path]) => {
    const list = await kube.request<{items: KubeObject[]}>('GET', path, {query: {labelSelector: INSTALLATION_SELECTOR}, what: `list ${path}`})
    return list.items.filter((item) => item.metadata.labels?.[ORIGIN_LABEL] !== 'install').map((item) => ({...item, kind}))
  }))
  return lists.flat()
}

// The controller in a cluster (`controller run --store kubernetes`): every replica of the Deployment
// serves from the same objects in the install namespace. The CA is Secret ztctl-ca, created by the
// first replica that starts (a create conflict means another one won: use its CA), published for the
// agents as ConfigMap ztctl-ca-root; the CLI's admin identity is Secret ztctl-admin, kept fresh by the
// leader; the Lease ztctl-controller elects the leader that runs the background writers.
import {hostname} from 'node:os'

import type {V1Secret} from '@kubernetes/client-node'

import {ExitCode, ZtError} from '../errors.js'
import {type IdentityFile, parseIdentityFile} from '../identity/file.js'
import {isConflict, isNotFound, type KubeClients, kubeClients, kubeError, type KubeTarget} from '../kube/client.js'
import {LeaderElector} from '../kube/lease.js'
import {ADMIN_IDENTITY_KEY, CA_ROOT_KEY, DEFAULT_INSTALL, HOST_IDENTITY, HUB_IDENTITY, LABEL, NODE_AGENT_SERVICE_ACCOUNT, RUNTIME_OBJECTS, ztctlLabels} from '../kube/objects.js'
import {certInfo, fingerprint, splitPem} from '../pki/cert-info.js'
import {createCA, validateCA} from '../pki/pki.js'
import type {AdminHome} from './admin.js'
import type {ControllerCA} from './ca.js'
import {type KubeMeshOptions, startKubeMesh} from './kube-mesh.js'
import {kubeNodeAgentAuthority} from './node-enroll.js'
import type {Logger} from './logger.js'
import type {ControllerSite} from './site.js'
import {openKubeStore} from './store/kube.js'

export interface KubeSiteOptions extends KubeTarget {
  /** the install namespace (POD_NAMESPACE in the pod) */
  namespace: string
  /** this replica (POD_NAME in the pod): the Lease holder and the agent-status writer */
  podName?: string
  logger: Logger
  /** leader election timing (tests shorten it) */
  lease?: {durationMs?: number; renewDeadlineMs?: number; retryPeriodMs?: number}
  statusFlushMs?: number
  /** keep the host pod's identity `host` (role host) valid in this Secret (install renders it with hostPod.enabled) */
  hostIdentitySecret?: string
  /** keep the hub's identity `hub` (role hub) valid in this Secret (install renders it with hub.enabled) */
  hubIdentitySecret?: string
  /** informer timing of the cluster watch (tests shorten it) */
  meshCache?: KubeMeshOptions['cache']
}

const CA_CERT_KEY = 'ca.crt'
const CA_KEY_KEY = 'ca.key'
const b64 = (text: string): string => Buffer.from(text).toString('base64')
const unb64 = (text: string | undefined): string | undefined => (text === undefined ? undefined : Buffer.from(text, 'base64').toString('utf8'))

export async function openKubeSite(options: KubeSiteOptions): Promise<ControllerSite> {
  const clients = await kubeClients(options)
  const {namespace, logger} = options
  const replica = options.podName ?? `${hostname()}-${process.pid}`
  const install = await installName(clients, namespace, options.podName)
  const store = await openKubeStore({clients, install, logger, namespace, replica, statusFlushMs: options.statusFlushMs})
  const mesh = startKubeMesh({cache: options.meshCache, clients, logger, namespace, store})
  const secrets = secretIo(clients, namespace)
  /** An identity file in key identity.json of Secret NAME. */
  const secretHome = (name: string): AdminHome => {
    const data = (identity: IdentityFile): Record<string, string> => ({[ADMIN_IDENTITY_KEY]: JSON.stringify(identity, null, 2) + '\n'})
    /** the Secret's resourceVersion each read identity came from (what replace() updates conditionally) */
    const versions = new WeakMap<IdentityFile, string>()
    return {
      location: `secret/${name}`,
      async read() {
        const secret = await secrets.read(name)
        const text = unb64(secret?.data?.[ADMIN_IDENTITY_KEY])
        if (text === undefined) return undefined
        const identity = parseIdentityFile(text, `secret/${name} in ${namespace}`)
        if (secret?.metadata?.resourceVersion) versions.set(identity, secret.metadata.resourceVersion)
        return identity
      },
      replace: (identity, read) => secrets.update(name, install, data(identity), versions.get(read)),
      write: (identity) => secrets.put(name, install, data(identity)),
    }
  }
  return {
    admin: secretHome(RUNTIME_OBJECTS.adminSecret),
    keptIdentities: [
      ...(options.hostIdentitySecret ? [{home: secretHome(options.hostIdentitySecret), identity: {admin: false, name: HOST_IDENTITY, roles: [HOST_IDENTITY]}}] : []),
      ...(options.hubIdentitySecret ? [{home: secretHome(options.hubIdentitySecret), identity: {admin: false, name: HUB_IDENTITY, roles: ['hub']}}] : []),
    ],
    announce: async () => {},
    async close() {
      await mesh.close()
      await store.close()
    },
    describe: {namespace, replica},
    kind: 'kubernetes',
    lead(events) {
      const elector = new LeaderElector({
        coordination: clients.coordination, identity: replica, labels: ztctlLabels(install, 'controller'), leaseDurationMs: options.lease?.durationMs, logger,
        name: RUNTIME_OBJECTS.lease, namespace, onStartedLeading: events.onStart, onStoppedLeading: events.onStop,
        renewDeadlineMs: options.lease?.renewDeadlineMs, retryPeriodMs: options.lease?.retryPeriodMs,
      })
      elector.start()
      return {
        describe: () => ({leader: elector.isLeader, lease: RUNTIME_OBJECTS.lease, replica}),
        get isLeader() {
          return elector.isLeader
        },
        stop: () => elector.stop(),
      }
    },
    mesh,
    loadCA: (trustDomain) => loadOrCreateClusterCA(clients, namespace, install, trustDomain, logger),
    nodeAgents: kubeNodeAgentAuthority(clients, namespace, NODE_AGENT_SERVICE_ACCOUNT),
    store,
  }
}

/** The `ztctl.io/install` label of our own pod (what install rendered), so `uninstall --purge` finds what we make. */
async function installName(clients: KubeClients, namespace: string, podName: string | undefined): Promise<string> {
  if (!podName) return DEFAULT_INSTALL
  try {
    const pod = await clients.core.readNamespacedPod({name: podName, namespace})
    return pod.metadata?.labels?.[LABEL.install] ?? DEFAULT_INSTALL
  } catch {
    return DEFAULT_INSTALL
  }
}

function secretIo(clients: KubeClients, namespace: string) {
  return {
    async read(name: string): Promise<undefined | V1Secret> {
      try {
        return await clients.core.readNamespacedSecret({name, namespace})
      } catch (error) {
        if (isNotFound(error)) return undefined
        throw kubeError(error, `read Secret ${name} in ${namespace}`)
      }
    },
    /** Replace the Secret if it is still at RESOURCE_VERSION: false when it changed or is gone. */
    async update(name: string, install: string, data: Record<string, string>, resourceVersion: string | undefined): Promise<boolean> {
      if (!resourceVersion) return false
      try {
        await clients.core.replaceNamespacedSecret({body: secretBody(name, namespace, install, data, resourceVersion), name, namespace})
        return true
      } catch (error) {
        if (isNotFound(error) || isConflict(error)) return false
        throw kubeError(error, `write Secret ${name} in ${namespace}`)
      }
    },
    /** Create, or replace whatever is there (only the leader writes these). */
    async put(name: string, install: string, data: Record<string, string>): Promise<void> {
      const body = secretBody(name, namespace, install, data)
      try {
        await clients.core.replaceNamespacedSecret({body, name, namespace})
      } catch (error) {
        if (!isNotFound(error)) throw kubeError(error, `write Secret ${name} in ${namespace}`)
        await clients.core.createNamespacedSecret({body, namespace}).catch((created: unknown) => {
          throw kubeError(created, `create Secret ${name} in ${namespace}`)
        })
      }
    },
  }
}

/**
 * Secret ztctl-ca: used when it exists (made by an earlier start, another replica, or the operator with
 * their own intermediate: ca.crt may carry its chain), else created. Two replicas starting at once both
 * generate a CA, one create wins, the other reads the winner's.
 */
async function loadOrCreateClusterCA(clients: KubeClients, namespace: string, install: string, trustDomain: string, logger: Logger): Promise<ControllerCA & {created: boolean}> {
  const secrets = secretIo(clients, namespace)
  const name = RUNTIME_OBJECTS.caSecret
  let created = false
  let secret = await secrets.read(name)
  if (!secret) {
    const pair = await createCA(trustDomain)
    const body: V1Secret = {
      data: {[CA_CERT_KEY]: b64(pair.certPem), [CA_KEY_KEY]: b64(pair.keyPem)},
      metadata: {labels: ztctlLabels(install, 'controller'), name, namespace},
      type: 'Opaque',
    }
    try {
      secret = await clients.core.createNamespacedSecret({body, namespace})
      created = true
      logger.info({secret: name}, 'created the mesh CA')
    } catch (error) {
      if (!isConflict(error)) throw kubeError(error, `create Secret ${name} in ${namespace}`)
      secret = await secrets.read(name)
    }
  }

  const ca = await caFromSecret(secret, `Secret ${namespace}/${name}`, trustDomain)
  await publishRoot(clients, namespace, install, ca.bundle)
  return {...ca, created}
}

async function caFromSecret(secret: undefined | V1Secret, where: string, trustDomain: string): Promise<ControllerCA> {
  const chain = splitPem(unb64(secret?.data?.[CA_CERT_KEY]) ?? '')
  const keyPem = unb64(secret?.data?.[CA_KEY_KEY])
  if (chain.length === 0 || !keyPem) {
    throw new ZtError('ZT_ERR_BAD_CA', `${where} lacks ${CA_CERT_KEY} (PEM, the CA first, then its chain) or ${CA_KEY_KEY}`, {
      suggestion: 'delete it to let the controller create a CA, or fill it with your intermediate CA',
    })
  }

  const certPem = chain[0]
  await validateCA({certPem, keyPem})
  const declared = certInfo(certPem).spiffe
  if (declared !== undefined && declared !== `spiffe://${trustDomain}`) {
    throw new ZtError('ZT_ERR_TRUST_DOMAIN_MISMATCH', `${where} is the CA of ${declared}, not of trust domain ${trustDomain}`, {
      exit: ExitCode.conflict, suggestion: 'pass the trust domain it was made for (--trust-domain), or replace the CA Secret',
    })
  }

  return {bundle: chain.join(''), certPem, fingerprint: fingerprint(certPem), keyPem}
}

/** ConfigMap ztctl-ca-root: the bundle node agents trust (mounted into their pods). */
async function publishRoot(clients: KubeClients, namespace: string, install: string, bundle: string): Promise<void> {
  const name = RUNTIME_OBJECTS.caRootConfigMap
  const body = {data: {[CA_ROOT_KEY]: bundle}, metadata: {labels: ztctlLabels(install, 'controller'), name, namespace}}
  try {
    const current = await clients.core.readNamespacedConfigMap({name, namespace})
    if (current.data?.[CA_ROOT_KEY] === bundle) return
    await clients.core.replaceNamespacedConfigMap({body: {...body, metadata: {...body.metadata, resourceVersion: current.metadata?.resourceVersion}}, name, namespace})
  } catch (error) {
    if (isConflict(error)) return // another replica published it meanwhile
    if (!isNotFound(error)) throw kubeError(error, `publish ConfigMap ${name} in ${namespace}`)
    await clients.core.createNamespacedConfigMap({body, namespace}).catch((created: unknown) => {
      if (!isConflict(created)) throw kubeError(created, `create ConfigMap ${name} in ${namespace}`)
    })
  }
}

function secretBody(name: string, namespace: string, install: string, data: Record<string, string>, resourceVersion?: string): V1Secret {
  return {
    data: Object.fromEntries(Object.entries(data).map(([key, value]) => [key, b64(value)])),
    metadata: {labels: ztctlLabels(install, 'controller'), name, namespace, resourceVersion},
    type: 'Opaque',
  }
}

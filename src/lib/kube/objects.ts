// Names and labels of the Kubernetes objects ztctl makes (K8S-CONTRACT.md): what the installer renders
// and what the controller creates at run time share these, so `uninstall --purge` finds both by label.
export const DEFAULT_NAMESPACE = 'ztctl-system'
export const DEFAULT_INSTALL = 'default'

export const LABEL = {
  component: 'app.kubernetes.io/component',
  install: 'ztctl.io/install',
  managedBy: 'app.kubernetes.io/managed-by',
  partOf: 'app.kubernetes.io/part-of',
} as const

/** Objects the controller makes at run time (`uninstall` keeps them unless --purge). */
export const RUNTIME_OBJECTS = {
  /** Secret: ca.crt, ca.key */
  caSecret: 'ztctl-ca',
  /** ConfigMap: root-cert.pem, the bundle agents trust */
  caRootConfigMap: 'ztctl-ca-root',
  /** Secret: identity.json, the admin identity the CLI uses */
  adminSecret: 'ztctl-admin',
  /** Lease: leader election among controller replicas */
  lease: 'ztctl-controller',
  /** ConfigMap: small settings fixed at first start (trust domain, CA fingerprint) */
  metaConfigMap: 'ztctl-meta',
  /** ConfigMap: one key per agent, its acknowledged version and when it was last seen */
  agentStatusConfigMap: 'ztctl-agent-status',
  /** Secret: identity.json of the host pod's identity `host` (written by the leader when install enables the host pod) */
  hostIdentitySecret: 'ztctl-host',
  /** Secret: identity.json of the installed hub's identity `hub` (written by the leader when install enables the hub) */
  hubIdentitySecret: 'ztctl-hub',
} as const

/** The installed hub's identity name (role `hub`); agents in the cluster pin it. */
export const HUB_IDENTITY = 'hub'
/** The host pod's identity name and role (policies: `@host`, `#host`). */
export const HOST_IDENTITY = 'host'

export const CONTROLLER_SERVICE = 'ztctl-controller'
export const CONTROLLER_PORT = 15_012
export const NODE_AGENT_SERVICE_ACCOUNT = 'ztctl-node'
/** The audience of the projected ServiceAccount token node agents present. */
export const TOKEN_AUDIENCE = 'ztctl'
/** Where the node agent's pod mounts its token and the CA bundle (K8S-CONTRACT.md). */
export const NODE_TOKEN_PATH = '/var/run/secrets/ztctl/token'
export const NODE_CA_PATH = '/var/run/ztctl/ca/root-cert.pem'

/** Key of the identity file in Secret ztctl-admin. */
export const ADMIN_IDENTITY_KEY = 'identity.json'
export const CA_ROOT_KEY = 'root-cert.pem'

export function ztctlLabels(install: string, component: string): Record<string, string> {
  return {[LABEL.component]: component, [LABEL.install]: install, [LABEL.managedBy]: 'ztctl', [LABEL.partOf]: 'ztctl'}
}

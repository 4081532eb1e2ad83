// The contract between the controller and the agents: the resources of the configuration stream and
// the messages that carry them. Both sides import only this file from each other's domain.
//
// The stream (POST /v1/config/stream, HTTP/2, mutual TLS with the agent's identity) carries newline-
// delimited JSON both ways. The agent sends `subscribe` first, then one `ack` per version it applies.
// An agent applies each resource on its own: one it cannot apply (a listener whose port is taken) is
// reported in the ack's `resources` with its reason, and the rest of the version is applied all the
// same. A `nack` is for a version the agent could not take at all (it keeps the previous one). When a
// resource's status changes without a new version (a listener that later binds), the agent sends the
// `ack` of the same version again with the new statuses. The controller answers with a `snapshot` when the agent's `since` is unknown or too old, else
// with `delta`s from `since` on, and pushes a new `delta` after every committed change. Versions are the
// store's revision numbers: strictly increasing, never reused, so a reconnecting agent resumes from the
// last version it acknowledged.

/** `tcp/NAME` or `udp/NAME` (policies may also name `proxy`: every proxy exit) */
export type ServiceName = string

export interface Target {
  host: string
  port: number
  /** relative weight for weighted-random load balancing; default 1 */
  weight?: number
}

/** AGENT hosts SERVICE and forwards its connections to TARGETS (ZTM's outbound, OpenZiti's host.v1). */
export interface OutboundTunnel {
  agent: string
  /** `@identity` or `#role`; empty: any identity of the mesh (policies still apply) */
  allow: string[]
  service: ServiceName
  targets: Target[]
}

/** AGENT listens on LISTEN and carries each connection to an endpoint of SERVICE (ZTM's inbound). */
export interface InboundTunnel {
  agent: string
  /**
   * Addresses a tproxy sidecar (`agent run --mode tproxy`) captures for SERVICE: `HOST|IP|CIDR[:PORT]`
   * (IPv4; host names are answered by the sidecar's DNS from 100.64.0.0/10). Absent: no interception.
   */
  intercept?: string[]
  /** `ip:port`; the IP defaults to 127.0.0.1 (`127.0.0.1:0` when only intercepts were asked for) */
  listen: string
  service: ServiceName
  /** `udp/` services: a flow (one client address) with no datagram either way for this long ends; seconds, default 30 */
  idleTimeout?: number
}

/** An L4 authorization rule with ztunnel's semantics (see src/lib/proxy/state/authz.ts). */
export interface Policy {
  action: 'ALLOW' | 'DENY'
  /** source `@identity` / `#role`; empty: any source */
  from: string[]
  name: string
  /** destination ports; empty: any */
  ports: number[]
  /** services the policy applies to; empty: every service */
  services: ServiceName[]
  /** source CIDRs (the address the hosting agent sees); empty: any */
  sourceCidrs: string[]
}

/** What an agent needs to know about an identity: roles for policies. */
export interface IdentitySummary {
  name: string
  roles: string[]
  spiffe: string
}

/** A certificate that must no longer be accepted (a CRL entry), kept until the certificate expires. */
export interface Revocation {
  identity: string
  notAfter: string
  serial: string
  spiffe: string
}

/** An agent as the mesh knows it: where its HBONE port is reachable. */
export interface AgentRecord {
  /**
   * `host:port` of its HBONE listener as other agents should dial it; '' when it accepts no connection
   * (`agent run --no-listen`): it is reached through the hubs it attached to
   */
  hbone: string
  name: string
  spiffe: string
}

/**
 * A redirected pod (`ztctl redirect add`) as its node agent publishes it: identity
 * `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`, reachable as HBONE on `<ip>:15008`.
 */
export interface WorkloadRecord {
  /** the node agent's HBONE address (where the node itself is dialled) */
  hbone: string
  ips: string[]
  name: string
  namespace: string
  /** the node agent serving it (its identity name) */
  node: string
  serviceAccount: string
  uid: string
  /**
   * The Kubernetes Services this pod is a ready endpoint of (from their EndpointSlices): a connection from
   * a redirected pod to one of `vips` on `port` is carried as HBONE to this pod's `targetPort` (ztunnel's
   * workload `services`). Absent outside Kubernetes.
   */
  services?: WorkloadService[]
}

export interface WorkloadService {
  /** `namespace/name` of the Service */
  name: string
  /** its ClusterIPs */
  vips: string[]
  /** service port → the pod's port */
  ports: {port: number; targetPort: number}[]
}

/** The apps an agent can host over the mesh (ZTM's terminal, file sharing and scripts). */
export type AppName = 'file' | 'script' | 'terminal'
export const APP_NAMES: readonly AppName[] = ['file', 'script', 'terminal']

/**
 * APP on AGENT (`ztctl terminal|file|script config --agent`): off unless this resource exists with
 * `enabled`. Its streams are HBONE CONNECTs to the agent itself (service `app/APP`, docs/hbone.md "Apps"):
 * the allow list admits, then policies on `app/APP` apply, as for any hosted service.
 */
export interface AgentApp {
  agent: string
  /** `@identity`, `#role`, `*` (any mesh identity): who may use it; empty: nobody */
  allow: string[]
  app: AppName
  enabled: boolean
  /** script: any command line (`script run --shell`) and any program; off unless true */
  anyCommand?: boolean
  /** script: programs that may be run, as absolute paths or names looked up on the agent's PATH */
  commands?: string[]
  /** script: a directory on the agent's host whose executable files may be run by name */
  scriptDir?: string
  /** terminal: the shell's argv on the agent's host; default: $SHELL, else /bin/sh */
  shell?: string[]
}

/** A file on AGENT's host that its file app serves as NAME (`ztctl file publish`). */
export interface PublishedFile {
  agent: string
  name: string
  /** absolute path on the agent's host */
  path: string
}

/** AGENT's SOCKS5 + HTTP proxy listener (`ztctl proxy open`, ZTM's zt-proxy entry): targets go to the exits. */
export interface ProxyListener {
  agent: string
  /** `ip:port` (127.0.0.1 unless an IP was given) */
  listen: string
  /** RFC 1929 username/password (SOCKS5) and Proxy-Authorization Basic (HTTP); empty: no authentication */
  users: ProxyUser[]
}

export interface ProxyUser {
  name: string
  /** `scrypt$<N>$<r>$<p>$<salt b64>$<key b64>`: agents never see the password */
  passwordHash: string
}

/**
 * AGENT is a proxy exit (`ztctl proxy config`): it dials the targets that match TARGETS (IPv4/IPv6 CIDRs,
 * host names, `*.suffix`, `*`) and no EXCLUSION; names are resolved here, at the exit.
 */
export interface ProxyExit {
  agent: string
  /** `@identity` or `#role` that may use this exit; empty: any identity of the mesh (policies still apply) */
  allow: string[]
  exclusions: string[]
  targets: string[]
}

export interface ResourceKinds {
  agent: AgentRecord
  app: AgentApp
  exit: ProxyExit
  file: PublishedFile
  identity: IdentitySummary
  inbound: InboundTunnel
  outbound: OutboundTunnel
  policy: Policy
  proxy: ProxyListener
  revocation: Revocation
  workload: WorkloadRecord
}
export type ResourceKind = keyof ResourceKinds

export const RESOURCE_KINDS: readonly ResourceKind[] = ['agent', 'app', 'exit', 'file', 'identity', 'inbound', 'outbound', 'policy', 'proxy', 'revocation', 'workload']

/** The key of a resource within its kind. */
export function resourceKey<K extends ResourceKind>(kind: K, value: ResourceKinds[K]): string {
  switch (kind) {
    case 'agent':
    case 'identity': {
      return (value as AgentRecord | IdentitySummary).name
    }

    case 'app': {
      const app = value as AgentApp
      return `${app.app}@${app.agent}`
    }

    case 'file': {
      const file = value as PublishedFile
      return `${file.name}@${file.agent}`
    }

    case 'exit':
    case 'proxy': {
      return (value as ProxyExit | ProxyListener).agent
    }

    case 'inbound':
    case 'outbound': {
      const tunnel = value as InboundTunnel | OutboundTunnel
      return `${tunnel.service}@${tunnel.agent}`
    }

    case 'policy': {
      return (value as Policy).name
    }

    case 'revocation': {
      return (value as Revocation).serial
    }

    case 'workload': {
      return (value as WorkloadRecord).uid
    }
  }

  throw new Error(`unknown resource kind ${String(kind)}`)
}

/** The whole configuration: one map per kind, keyed by resourceKey. */
export type ConfigSnapshot = {[K in ResourceKind]: Record<string, ResourceKinds[K]>}

export function emptySnapshot(): ConfigSnapshot {
  return {agent: {}, app: {}, exit: {}, file: {}, identity: {}, inbound: {}, outbound: {}, policy: {}, proxy: {}, revocation: {}, workload: {}}
}

export type Change =
  | {key: string; kind: ResourceKind; op: 'delete'}
  | {[K in ResourceKind]: {key: string; kind: K; op: 'put'; value: ResourceKinds[K]}}[ResourceKind]

export type ControllerMessage =
  | {changes: Change[]; from: number; type: 'delta'; version: number}
  /**
   * A snapshot too large for one line comes in parts of one version: each part holds some kinds (some of
   * their entries), every part but the last says `more: true`; the agent merges them and applies (and
   * acks) the version once, after the last.
   */
  | {more?: boolean; resources: Partial<ConfigSnapshot>; type: 'snapshot'; version: number}
  | {error: {code: string; message: string}; type: 'error'}

/** Parts one snapshot may come in (each a line of at most MAX_STREAM_LINE_BYTES). */
export const MAX_SNAPSHOT_PARTS = 256

/** One agent's connection to a hub (`agent run --hub`), as the agent reports it (proxy-status). */
export interface HubAttachment {
  /** the hub as given: `HOST:PORT` */
  address: string
  /** the hub's identity name, once connected */
  hub?: string
  lastError?: string
  /** the last PING round trip over this connection */
  rttMs?: number
  state: 'connected' | 'connecting' | 'down'
  /** relayed streams open through it now (this agent's standby streams not counted) */
  streams: number
}

/** At most this many hubs per agent (`--hub` is repeatable up to it). */
export const MAX_HUBS = 8

/**
 * How an agent stands with one resource of the version it acknowledges. An ack lists every resource the
 * agent acts on itself (its inbound and outbound tunnels) and every resource it could not apply; a
 * resource not listed was applied.
 */
export interface ResourceStatus {
  /** a stable code for the failure (e.g. EADDRINUSE, ZT_ERR_CONFIG), for programs */
  code?: string
  key: string
  kind: ResourceKind
  /** why it is not applied, in the agent's words (state `error`); at most MAX_STATUS_REASON characters */
  reason?: string
  state: 'applied' | 'error'
}

export const MAX_STATUS_REASON = 512
/** Statuses one ack may carry; an agent acting on more reports its errors first. */
export const MAX_ACK_STATUSES = 4096

export type AgentMessage =
  /** `version`: the agent's software version (shown by `ztctl proxy-status`) */
  | {agent: string; hbone: string; since?: number; type: 'subscribe'; version?: string}
  | {error: string; type: 'nack'; version: number}
  | {resources?: ResourceStatus[]; type: 'ack'; version: number}
  /** the agent's hub attachments, whenever they change (at most one per second) */
  | {hubs: HubAttachment[]; type: 'hubs'}

/** Apply a change list to a snapshot in place. */
export function applyChanges(snapshot: ConfigSnapshot, changes: readonly Change[]): void {
  for (const change of changes) {
    const table = snapshot[change.kind] as Record<string, unknown>
    if (change.op === 'delete') delete table[change.key]
    else table[change.key] = change.value
  }
}

/** Agent → controller lines (an ack with MAX_ACK_STATUSES statuses fits); anything bigger is garbage. */
export const MAX_AGENT_LINE_BYTES = 4 * 1024 * 1024

/** Upper bound of one line on the stream; a longer line is a protocol error, not a reason to buffer. */
export const MAX_STREAM_LINE_BYTES = 16 * 1024 * 1024

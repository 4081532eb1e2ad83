// The custom resources that hold the mesh's configuration when the controller runs in a cluster
// (`controller run --store kubernetes`): one CRD per configuration kind of src/lib/config/types.ts, in the
// group ztctl.io, namespaced (they live in the install namespace). `install` applies them first; the
// Kubernetes store reads and writes them; users may `kubectl get policies.ztctl.io`. The CA, identities and
// enrollment tokens are not custom resources: they live in Secrets (see store/kube.ts).
import {createHash} from 'node:crypto'

import type {ResourceKind} from '../config/types.js'

export const CRD_GROUP = 'ztctl.io'
export const CRD_VERSION = 'v1alpha1'
export const CRD_API_VERSION = `${CRD_GROUP}/${CRD_VERSION}`
/** The annotation that carries a resource's exact key (object names are a lossy, hashed form of it). */
export const KEY_ANNOTATION = 'ztctl.io/key'

/** The configuration kinds stored as custom resources (`identity` summaries come from the identity Secrets). */
export type CrdKind = Exclude<ResourceKind, 'identity'>

interface CrdSpec {
  columns: {jsonPath: string; name: string; type: 'boolean' | 'integer' | 'string'}[]
  kind: string
  plural: string
  shortNames: string[]
  /** the OpenAPI schema of `.spec` (the resource value of config/types.ts) */
  spec: Record<string, unknown>
}

const str = {type: 'string'}
const strList = {items: str, type: 'array'}
/** A list a user may leave out (kubectl apply): the API server fills in [] (structural-schema defaulting). */
const optionalList = (items: Record<string, unknown>) => ({default: [], items, type: 'array'})
const port = {maximum: 65_535, minimum: 1, type: 'integer'}

export const CRD_SPECS: Record<CrdKind, CrdSpec> = {
  agent: {
    columns: [{jsonPath: '.spec.hbone', name: 'HBONE', type: 'string'}, {jsonPath: '.spec.spiffe', name: 'SPIFFE ID', type: 'string'}],
    kind: 'MeshAgent',
    plural: 'meshagents',
    shortNames: ['ztagent'],
    // hbone "": an agent that opens no port (`agent run --no-listen`); the API server keeps it as null.
    spec: {properties: {hbone: {nullable: true, type: 'string'}, name: str, spiffe: str}, required: ['name', 'hbone', 'spiffe'], type: 'object'},
  },
  app: {
    columns: [{jsonPath: '.spec.app', name: 'APP', type: 'string'}, {jsonPath: '.spec.agent', name: 'AGENT', type: 'string'}, {jsonPath: '.spec.enabled', name: 'ENABLED', type: 'boolean'}],
    kind: 'MeshApp',
    plural: 'meshapps',
    shortNames: ['ztapp'],
    spec: {
      properties: {
        agent: str, allow: strList, anyCommand: {type: 'boolean'}, app: {enum: ['file', 'script', 'terminal'], type: 'string'}, commands: strList,
        enabled: {type: 'boolean'}, scriptDir: str, shell: strList,
      },
      required: ['agent', 'app', 'allow', 'enabled'],
      type: 'object',
    },
  },
  file: {
    columns: [{jsonPath: '.spec.name', name: 'FILE', type: 'string'}, {jsonPath: '.spec.agent', name: 'AGENT', type: 'string'}, {jsonPath: '.spec.path', name: 'PATH', type: 'string'}],
    kind: 'PublishedFile',
    plural: 'publishedfiles',
    shortNames: ['ztfile'],
    spec: {properties: {agent: str, name: str, path: str}, required: ['agent', 'name', 'path'], type: 'object'},
  },
  exit: {
    columns: [{jsonPath: '.spec.agent', name: 'AGENT', type: 'string'}],
    kind: 'ProxyExit',
    plural: 'proxyexits',
    shortNames: ['ztexit'],
    spec: {properties: {agent: str, allow: strList, exclusions: strList, targets: strList}, required: ['agent', 'targets'], type: 'object'},
  },
  inbound: {
    columns: [{jsonPath: '.spec.service', name: 'SERVICE', type: 'string'}, {jsonPath: '.spec.agent', name: 'AGENT', type: 'string'}, {jsonPath: '.spec.listen', name: 'LISTEN', type: 'string'}],
    kind: 'InboundTunnel',
    plural: 'inboundtunnels',
    shortNames: ['ztin'],
    spec: {properties: {agent: str, idleTimeout: {minimum: 1, type: 'integer'}, intercept: strList, listen: str, service: str}, required: ['agent', 'listen', 'service'], type: 'object'},
  },
  outbound: {
    columns: [{jsonPath: '.spec.service', name: 'SERVICE', type: 'string'}, {jsonPath: '.spec.agent', name: 'AGENT', type: 'string'}],
    kind: 'OutboundTunnel',
    plural: 'outboundtunnels',
    shortNames: ['ztout'],
    spec: {
      properties: {
        agent: str, allow: optionalList(str), service: str,
        targets: {items: {properties: {host: str, port, weight: {exclusiveMinimum: true, minimum: 0, type: 'number'}}, required: ['host', 'port'], type: 'object'}, minItems: 1, type: 'array'},
      },
      required: ['agent', 'service', 'targets'],
      type: 'object',
    },
  },
  policy: {
    columns: [{jsonPath: '.spec.action', name: 'ACTION', type: 'string'}],
    kind: 'Policy',
    plural: 'policies',
    shortNames: ['ztpol'],
    spec: {
      properties: {
        action: {enum: ['ALLOW', 'DENY'], type: 'string'}, from: optionalList(str), name: str, ports: optionalList(port), services: optionalList(str), sourceCidrs: optionalList(str),
      },
      required: ['action', 'name'],
      type: 'object',
    },
  },
  proxy: {
    columns: [{jsonPath: '.spec.agent', name: 'AGENT', type: 'string'}, {jsonPath: '.spec.listen', name: 'LISTEN', type: 'string'}],
    kind: 'ProxyListener',
    plural: 'proxylisteners',
    shortNames: ['ztproxy'],
    spec: {
      properties: {agent: str, listen: str, users: {items: {properties: {name: str, passwordHash: str}, required: ['name', 'passwordHash'], type: 'object'}, type: 'array'}},
      required: ['agent', 'listen'],
      type: 'object',
    },
  },
  revocation: {
    columns: [{jsonPath: '.spec.identity', name: 'IDENTITY', type: 'string'}, {jsonPath: '.spec.notAfter', name: 'NOT AFTER', type: 'string'}],
    kind: 'Revocation',
    plural: 'revocations',
    shortNames: ['ztrev'],
    spec: {properties: {identity: str, notAfter: str, serial: str, spiffe: str}, required: ['serial', 'notAfter'], type: 'object'},
  },
  workload: {
    columns: [{jsonPath: '.spec.namespace', name: 'WORKLOAD NAMESPACE', type: 'string'}, {jsonPath: '.spec.node', name: 'NODE', type: 'string'}],
    kind: 'Workload',
    plural: 'workloads',
    shortNames: ['ztwl'],
    spec: {
      properties: {
        hbone: str, ips: strList, name: str, namespace: str, node: str, serviceAccount: str, uid: str,
        services: optionalList({
          properties: {name: str, ports: optionalList({properties: {port, targetPort: port}, required: ['port', 'targetPort'], type: 'object'}), vips: optionalList(str)},
          required: ['name'], type: 'object',
        }),
      },
      required: ['uid', 'name', 'namespace', 'serviceAccount', 'node', 'hbone', 'ips'],
      type: 'object',
    },
  },
}

export const CRD_KINDS = Object.keys(CRD_SPECS) as CrdKind[]

/** The CustomResourceDefinition objects, in a stable order (apiextensions.k8s.io/v1). */
export function crdObjects(labels: Record<string, string> = {}): Record<string, unknown>[] {
  return CRD_KINDS.map((kind) => {
    const spec = CRD_SPECS[kind]
    return {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: {labels, name: `${spec.plural}.${CRD_GROUP}`},
      spec: {
        group: CRD_GROUP,
        names: {categories: ['ztctl'], kind: spec.kind, listKind: `${spec.kind}List`, plural: spec.plural, shortNames: spec.shortNames, singular: spec.kind.toLowerCase()},
        scope: 'Namespaced',
        versions: [{
          additionalPrinterColumns: [...spec.columns, {jsonPath: '.metadata.creationTimestamp', name: 'AGE', type: 'date'}],
          name: CRD_VERSION,
          schema: {openAPIV3Schema: {properties: {spec: spec.spec}, required: ['spec'], type: 'object'}},
          served: true,
          storage: true,
        }],
      },
    }
  })
}

const DNS_LABELISH = /^[a-z0-9]([a-z0-9-]{0,51}[a-z0-9])?$/

/**
 * The object name of a resource key. Keys may hold `/`, `@`, `_` or upper case, which object names may not, so
 * the name is a readable, lower-cased form of the key plus a hash of the exact key (the key itself is kept in
 * the KEY_ANNOTATION). Keys that are already valid short names are used as they are.
 */
export function objectNameOf(key: string): string {
  if (DNS_LABELISH.test(key)) return key
  const readable = key.toLowerCase().replaceAll(/[^a-z0-9-]+/g, '-').replaceAll(/^-+|-+$/g, '').slice(0, 40) || 'r'
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 10)
  return `${readable}-${hash}`
}

/** JSON-schema keys that client-node's typed serializer knows only under other names (V1JSONSchemaProps). */
const CLIENT_NODE_SCHEMA_KEYS: Record<string, string> = {
  $ref: 'ref', $schema: 'schema', default: '_default', enum: '_enum',
  'x-kubernetes-embedded-resource': 'x_kubernetes_embedded_resource', 'x-kubernetes-int-or-string': 'x_kubernetes_int_or_string',
  'x-kubernetes-list-map-keys': 'x_kubernetes_list_map_keys', 'x-kubernetes-list-type': 'x_kubernetes_list_type',
  'x-kubernetes-map-type': 'x_kubernetes_map_type', 'x-kubernetes-preserve-unknown-fields': 'x_kubernetes_preserve_unknown_fields',
  'x-kubernetes-validations': 'x_kubernetes_validations',
}

/**
 * A CRD object as client-node's typed APIs (KubernetesObjectApi, ApiextensionsV1Api) must be given it:
 * their serializer silently drops `default`, `enum` and `x-kubernetes-*` under their JSON names.
 * Rendered YAML (manifest generate) uses crdObjects() as it is.
 */
export function forClientNode(crd: Record<string, unknown>): Record<string, unknown> {
  const map = (value: unknown, each: (item: unknown) => unknown): unknown =>
    Array.isArray(value) ? value.map(each) : Object.fromEntries(Object.entries(value as object).map(([key, item]) => [key, each(item)]))
  const schema = (value: unknown): unknown => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return value
    return Object.fromEntries(Object.entries(value).map(([key, item]) => {
      // Keywords that hold schemas; `properties` is keyed by field names, which stay as they are.
      const next = key === 'properties' || key === 'patternProperties' ? map(item, schema)
        : ['items', 'additionalProperties', 'not'].includes(key) ? schema(item)
          : ['allOf', 'anyOf', 'oneOf'].includes(key) ? map(item, schema) : item
      return [CLIENT_NODE_SCHEMA_KEYS[key] ?? key, next]
    }))
  }

  const walk = (value: unknown): unknown => {
    if (typeof value !== 'object' || value === null) return value
    if (Array.isArray(value)) return value.map(walk)
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, key === 'openAPIV3Schema' ? schema(item) : walk(item)]))
  }

  return walk(crd) as Record<string, unknown>
}

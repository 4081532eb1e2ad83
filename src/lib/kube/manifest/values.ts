// The installation's values: one schema (types, defaults, descriptions) that `--set`, `-f values.yaml`,
// profiles and `profile dump` all go through. An unknown key or a value of the wrong type is a ZtError that
// names the key and suggests the closest valid one; nothing reaches the renderer unchecked.
import {readFile} from 'node:fs/promises'

import {closest} from '../../closest.js'
import {ExitCode, ZtError} from '../../errors.js'

type LeafType = 'boolean' | 'integer' | 'quantity' | 'string' | 'stringList' | 'stringMap'

interface Leaf {
  /** allowed values (strings) */
  choices?: readonly string[]
  default: unknown
  description: string
  min?: number
  pattern?: RegExp
  /** what `pattern` means, for the error message */
  patternText?: string
  type: LeafType
}

type SchemaNode = {[key: string]: Leaf | SchemaNode}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
const DNS_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/
// resource.Quantity's text form (kubectl's regex, without the exotic forms)
const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)(m|[KMGTPE]i?|[eE][+-]?\d+|k)?$/
const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const

const leaf = (type: LeafType, defaultValue: unknown, description: string, extra: Partial<Leaf> = {}): Leaf => ({default: defaultValue, description, type, ...extra})
const quantity = (defaultValue: string | undefined, what: string): Leaf => leaf('quantity', defaultValue, what)
const imageOverride = (component: string): Leaf =>
  leaf('string', '', `full image reference for the ${component} (empty: image.repository:image.tag)`)
const resources = (cpu: string, memory: string, memoryLimit: string): SchemaNode => ({
  limits: {cpu: quantity(undefined, 'CPU limit (empty: none)'), memory: quantity(memoryLimit, 'memory limit')},
  requests: {cpu: quantity(cpu, 'CPU request'), memory: quantity(memory, 'memory request')},
})

// nodes sharing one filesystem (test machines): hostPath + subPathExpr, see manifest/host-dirs.ts
const PER_NODE_NOTE = '; a $(NODE_NAME) path component stands for each node\'s name'

/** The schema. `image.tag`'s default is the CLI's version, filled in by defaultValues(). */
export const VALUES_SCHEMA: SchemaNode = {
  cni: {
    binDir: leaf('string', '/opt/cni/bin', `the nodes' CNI plugin directory${PER_NODE_NOTE}`, {pattern: /^\//, patternText: 'an absolute path'}),
    confDir: leaf('string', '/etc/cni/net.d', `the nodes' CNI configuration directory${PER_NODE_NOTE}`, {pattern: /^\//, patternText: 'an absolute path'}),
    enabled: leaf('boolean', true, 'install the CNI DaemonSet (ztctl-cni)'),
    excludedNamespaces: leaf('stringList', ['kube-system'], 'namespaces never enrolled, whatever their labels (the install namespace never is)'),
    image: imageOverride('CNI agent'),
    netnsDir: leaf('string', '/var/run/netns', `where the nodes' container runtime keeps pods' network namespaces${PER_NODE_NOTE}`, {pattern: /^\//, patternText: 'an absolute path'}),
    nodeSelector: leaf('stringMap', {}, 'node labels the CNI agent runs on (default: every node)'),
    readinessPort: leaf('integer', 15_029, "the CNI agent's readiness port on each node (it runs in the host network)", {min: 1}),
    resources: resources('50m', '64Mi', '256Mi'),
    runDir: leaf('string', '/var/run/ztctl/node', `host directory the CNI agent, its plugin and the node agent share (sockets, pod records)${PER_NODE_NOTE}`, {pattern: /^\//, patternText: 'an absolute path'}),
  },
  controller: {
    image: imageOverride('controller'),
    nodeSelector: leaf('stringMap', {}, 'node labels the controller runs on'),
    replicas: leaf('integer', 1, 'controller replicas (all serve; a Lease elects the one running background work)', {min: 1}),
    resources: resources('100m', '128Mi', '512Mi'),
  },
  demo: {
    enabled: leaf('boolean', false, 'install the sample apps (web + client) in demo.namespace'),
    image: leaf('string', 'busybox:1.36', 'image of the sample apps (needs sh, httpd, sleep)'),
    namespace: leaf('string', 'ztctl-demo', 'namespace of the sample apps', {pattern: DNS_LABEL, patternText: 'a DNS label'}),
    pullPolicy: leaf('string', 'IfNotPresent', 'pull policy of the sample apps', {choices: PULL_POLICIES}),
  },
  hostPod: {
    enabled: leaf('boolean', false, 'install the host pod (Deployment ztctl-host, identity `host`): it hosts services towards addresses inside the cluster (`tunnel open outbound … --agent host --target web.default.svc.cluster.local:80`)'),
    image: imageOverride('host pod'),
    nodeSelector: leaf('stringMap', {}, 'node labels the host pod runs on'),
    resources: resources('50m', '96Mi', '512Mi'),
  },
  hub: {
    enabled: leaf('boolean', false, 'install a hub (Deployment + Service ztctl-hub on 15009, identity `hub` in Secret ztctl-hub, kept valid by the controller): the node agents and the host pod attach to it, and so can agents that open no port (`agent run --no-listen --hub hub@HOST:PORT`)'),
    image: imageOverride('hub'),
    nodeSelector: leaf('stringMap', {}, 'node labels the hub runs on'),
    resources: resources('100m', '96Mi', '512Mi'),
  },
  image: {
    pullPolicy: leaf('string', 'IfNotPresent', 'image pull policy of every ztctl container', {choices: PULL_POLICIES}),
    pullSecrets: leaf('stringList', [], 'names of image pull Secrets in the install namespace'),
    repository: leaf('string', 'ztctl.local/ztctl', 'image repository (the image `npm run image` builds)'),
    tag: leaf('string', '', 'image tag (default: this ztctl version)'),
  },
  logLevel: leaf('string', 'info', 'log level of the controller, node agents and CNI agents', {choices: LOG_LEVELS}),
  namespace: leaf('string', 'ztctl-system', 'namespace of the installation', {pattern: DNS_LABEL, patternText: 'a DNS label (lower case, digits, "-")'}),
  nodeAgent: {
    enabled: leaf('boolean', true, 'install the node-agent DaemonSet (ztctl-node)'),
    image: imageOverride('node agent'),
    nodeSelector: leaf('stringMap', {}, 'node labels the node agent runs on (default: every node)'),
    resources: resources('100m', '128Mi', '1Gi'),
  },
  trustDomain: leaf('string', 'cluster.local', 'SPIFFE trust domain, fixed when the controller first creates its CA', {pattern: DNS_NAME, patternText: 'a DNS name'}),
}

export type Values = Record<string, unknown>
type Path = readonly (number | string)[]

/** Every valid key, dotted (for suggestions and `profile dump`). */
export function valueKeys(node: SchemaNode = VALUES_SCHEMA, prefix = ''): string[] {
  return Object.entries(node).flatMap(([key, child]) => (isLeaf(child) ? [prefix + key] : valueKeys(child, `${prefix}${key}.`)))
}

export function describeValue(key: string): Leaf | undefined {
  const found = lookup(key.split('.'))
  return found && isLeaf(found) ? found : undefined
}

/** The schema's defaults, with image.tag set to `version`. */
export function defaultValues(version: string): Values {
  const walk = (node: SchemaNode): Values =>
    Object.fromEntries(Object.entries(node).map(([key, child]) => [key, isLeaf(child) ? structuredClone(child.default) : walk(child)]))
  const values = walk(VALUES_SCHEMA)
  ;(values.image as Values).tag = version
  return values
}

/** Deep-merge `overlay` (already checked) onto `base`: mappings merge key by key, lists item by item when set by index, anything else replaces. */
export function mergeValues(base: Values, overlay: Values): Values {
  const out: Values = structuredClone(base)
  for (const [key, value] of Object.entries(overlay)) {
    const current = out[key]
    out[key] = isPlainObject(value) && isPlainObject(current) ? mergeValues(current, value) : structuredClone(mergeListItems(current, value))
  }

  return out
}

/** Check a whole values document (a -f file or a profile): every key known, every value well typed. */
export function checkValues(document: unknown, origin: string): Values {
  if (document === null || document === undefined) return {}
  if (!isPlainObject(document)) throw badValue(origin, '', 'must be a mapping of keys to values')
  return checkNode(document, VALUES_SCHEMA, [], origin)
}

function checkNode(input: Values, schema: SchemaNode, at: Path, origin: string): Values {
  const out: Values = {}
  for (const [key, value] of Object.entries(input)) {
    const child = schema[key]
    const dotted = [...at, key].join('.')
    if (!child) throw unknownKey(dotted, origin)
    if (isLeaf(child)) out[key] = coerceDocumentValue(child, value, dotted, origin)
    else if (isPlainObject(value)) out[key] = checkNode(value, child, [...at, key], origin)
    else throw badValue(origin, dotted, `is a group of settings (${Object.keys(child).map((k) => `${dotted}.${k}`).join(', ')}), not a single value`)
  }

  return out
}

function coerceDocumentValue(spec: Leaf, value: unknown, key: string, origin: string): unknown {
  switch (spec.type) {
    case 'boolean': {
      if (typeof value !== 'boolean') throw badValue(origin, key, `must be true or false, not ${show(value)}`)
      return value
    }

    case 'integer': {
      if (typeof value !== 'number' || !Number.isInteger(value)) throw badValue(origin, key, `must be a whole number, not ${show(value)}`)
      return checkMin(spec, value, key, origin)
    }

    case 'quantity': {
      const text = typeof value === 'number' ? String(value) : value
      if (text === null || text === '') return undefined
      if (typeof text !== 'string' || !QUANTITY.test(text)) throw badValue(origin, key, `must be a Kubernetes quantity such as 100m, 0.5, 128Mi or 1Gi, not ${show(value)}`)
      return text
    }

    case 'string': {
      if (typeof value !== 'string') {
        throw badValue(origin, key, `must be a string, not ${show(value)}`, typeof value === 'number' ? `quote it: ${key.split('.').at(-1)}: "${value}"` : undefined)
      }

      return checkString(spec, value, key, origin)
    }

    case 'stringList': {
      if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) throw badValue(origin, key, `must be a list of strings, not ${show(value)}`)
      return [...value]
    }

    case 'stringMap': {
      if (!isPlainObject(value) || Object.values(value).some((item) => typeof item !== 'string')) {
        throw badValue(origin, key, `must be a mapping of strings to strings, not ${show(value)}`)
      }

      return {...value}
    }
  }
}

function checkString(spec: Leaf, value: string, key: string, origin: string): string {
  if (spec.choices && !spec.choices.includes(value)) {
    const near = closest(value, spec.choices)
    throw badValue(origin, key, `must be one of ${spec.choices.join(', ')}, not "${value}"`, near ? `did you mean ${key}=${near}?` : undefined)
  }

  if (spec.pattern && value !== '' && !spec.pattern.test(value)) throw badValue(origin, key, `must be ${spec.patternText}, not "${value}"`)
  return value
}

function checkMin(spec: Leaf, value: number, key: string, origin: string): number {
  if (spec.min !== undefined && value < spec.min) throw badValue(origin, key, `must be at least ${spec.min}, not ${value}`)
  if (key.endsWith('Port') && value > 65_535) throw badValue(origin, key, `must be a port (1-65535), not ${value}`)
  return value
}

/**
 * Parse `--set` expressions into a values overlay, typed by the schema: `a.b=c`, several at once separated
 * by commas (`a=1,b=2`), list items `a.b[0]=x`, whole lists `a.b={x,y}`, map keys with escaped dots
 * (`controller.nodeSelector.kubernetes\.io/os=linux`). Applied in order: a later one wins.
 */
export function parseSetValues(expressions: readonly string[]): Values {
  let overlay: Values = {}
  for (const expression of expressions) {
    for (const assignment of splitAssignments(expression)) overlay = mergeValues(overlay, parseAssignment(assignment))
  }

  return overlay
}

function parseAssignment(assignment: string): Values {
  const origin = `--set ${assignment}`
  const equals = indexOfUnescaped(assignment, '=')
  if (equals <= 0) throw new ZtError('ZT_ERR_BAD_SET', `--set "${assignment}" is not KEY=VALUE`, {exit: ExitCode.usage, suggestion: 'e.g. --set controller.replicas=2'})
  const keyText = assignment.slice(0, equals)
  const raw = assignment.slice(equals + 1)
  const {index, segments} = parseKey(keyText, origin)
  const {leafPath, mapKey, spec} = resolveKey(segments, origin)
  const dotted = leafPath.join('.')
  let value: unknown
  if (mapKey !== undefined) {
    value = {[mapKey]: raw}
  } else if (spec.type === 'stringList') {
    value = index === undefined ? parseList(raw, dotted, origin) : listWithItem(index, raw)
  } else {
    if (index !== undefined) throw badValue(origin, dotted, 'is not a list: drop the [index]')
    value = coerceSetValue(spec, raw, dotted, origin)
  }

  return nest(leafPath, value)
}

function coerceSetValue(spec: Leaf, raw: string, key: string, origin: string): unknown {
  switch (spec.type) {
    case 'boolean': {
      if (raw !== 'true' && raw !== 'false') throw badValue(origin, key, `must be true or false, not "${raw}"`)
      return raw === 'true'
    }

    case 'integer': {
      if (!/^-?\d+$/.test(raw)) throw badValue(origin, key, `must be a whole number, not "${raw}"`)
      return checkMin(spec, Number(raw), key, origin)
    }

    case 'quantity': {
      return coerceDocumentValue(spec, raw, key, origin)
    }

    case 'stringMap': {
      if (raw === '{}' || raw === 'null') return {}
      throw badValue(origin, key, 'is a map: set one entry with KEY.ENTRY=VALUE (escape dots in ENTRY as \\.)')
    }

    default: {
      return checkString(spec, raw, key, origin)
    }
  }
}

/** Find the leaf a dotted key names; a key below a stringMap leaf is one entry of that map. */
function resolveKey(segments: string[], origin: string): {leafPath: string[]; mapKey?: string; spec: Leaf} {
  let node: Leaf | SchemaNode = VALUES_SCHEMA
  for (const [position, segment] of segments.entries()) {
    if (isLeaf(node)) {
      if (node.type === 'stringMap') return {leafPath: segments.slice(0, position), mapKey: segments.slice(position).join('.'), spec: node}
      throw unknownKey(segments.join('.'), origin)
    }

    const child: Leaf | SchemaNode | undefined = node[segment]
    if (!child) throw unknownKey(segments.join('.'), origin)
    node = child
  }

  if (!isLeaf(node)) {
    const dotted = segments.join('.')
    throw badValue(origin, dotted, `is a group of settings; set one of ${Object.keys(node).map((k) => `${dotted}.${k}`).join(', ')}`)
  }

  return {leafPath: segments, spec: node}
}

function parseKey(text: string, origin: string): {index?: number; segments: string[]} {
  const match = /^(.*?)(?:\[(\d+)\])?$/.exec(text)!
  const segments: string[] = []
  let current = ''
  for (let i = 0; i < match[1].length; i++) {
    const char = match[1][i]
    if (char === '\\' && i + 1 < match[1].length) current += match[1][++i]
    else if (char === '.') {
      segments.push(current)
      current = ''
    } else current += char
  }

  segments.push(current)
  if (segments.some((segment) => segment === '')) throw new ZtError('ZT_ERR_BAD_SET', `${origin}: "${text}" has an empty key segment`, {exit: ExitCode.usage})
  return {index: match[2] === undefined ? undefined : Number(match[2]), segments}
}

function parseList(raw: string, key: string, origin: string): string[] {
  if (raw === '{}' || raw === '[]' || raw === '') return []
  if (!raw.startsWith('{') || !raw.endsWith('}')) throw badValue(origin, key, `is a list: write ${key}={a,b} or ${key}[0]=a`)
  return raw.slice(1, -1).split(',').map((item) => item.trim()).filter(Boolean)
}

// A sparse list from `a[2]=x`: merged over earlier items by mergeValues' replace rule, so keep the index.
function listWithItem(index: number, raw: string): string[] {
  if (index > 100) throw new ZtError('ZT_ERR_BAD_SET', `list index ${index} is too large`, {exit: ExitCode.usage})
  const list: string[] = Array.from({length: index}, () => '')
  list[index] = raw
  return list
}

function splitAssignments(expression: string): string[] {
  const parts: string[] = []
  let depth = 0
  let current = ''
  for (let i = 0; i < expression.length; i++) {
    const char = expression[i]
    if (char === '\\' && i + 1 < expression.length) {
      current += char + expression[++i]
      continue
    }

    if (char === '{') depth++
    if (char === '}') depth = Math.max(0, depth - 1)
    if (char === ',' && depth === 0) {
      parts.push(current)
      current = ''
    } else current += char
  }

  parts.push(current)
  return parts.filter((part) => part !== '')
}

function indexOfUnescaped(text: string, char: string): number {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') i++
    else if (text[i] === char) return i
  }

  return -1
}

/** Read and check `-f` files, in order. */
export async function readValuesFiles(files: readonly string[]): Promise<Values[]> {
  const {parse} = await import('yaml')
  return Promise.all(files.map(async (file) => {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (error) {
      throw new ZtError('ZT_ERR_VALUES_FILE', `values file ${file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
        exit: ExitCode.notFound, suggestion: 'check the -f path',
      })
    }

    let document: unknown
    try {
      document = parse(text)
    } catch (error) {
      throw new ZtError('ZT_ERR_VALUES_FILE', `values file ${file} is not valid YAML: ${(error as Error).message.split('\n')[0]}`, {exit: ExitCode.usage})
    }

    return checkValues(document, file)
  }))
}

/** List items set by index keep the earlier items: `a[1]=y` after `a={x,z}` gives [x, y]. */
function mergeListItems(base: unknown, overlay: unknown): unknown {
  if (!Array.isArray(base) || !Array.isArray(overlay) || !overlay.includes('')) return overlay
  return overlay.map((item, index) => (item === '' ? base[index] ?? '' : item))
}

function lookup(segments: readonly string[]): Leaf | SchemaNode | undefined {
  let node: Leaf | SchemaNode | undefined = VALUES_SCHEMA
  for (const segment of segments) {
    if (!node || isLeaf(node)) return undefined
    node = node[segment]
  }

  return node
}

function nest(segments: readonly string[], value: unknown): Values {
  let out: unknown = value
  for (const segment of [...segments].reverse()) out = {[segment]: out}
  return out as Values
}

function unknownKey(key: string, origin: string): ZtError {
  const near = closest(key, valueKeys())
  return new ZtError('ZT_ERR_UNKNOWN_VALUE', `${origin}: unknown value "${key}"`, {
    details: {key, suggestion: near},
    exit: ExitCode.usage,
    suggestion: near ? `did you mean ${near}? (\`ztctl profile dump ambient\` lists every value)` : 'run `ztctl profile dump ambient` for every value and its default',
  })
}

function badValue(origin: string, key: string, problem: string, suggestion?: string): ZtError {
  return new ZtError('ZT_ERR_BAD_VALUE', `${origin}: ${key ? `${key} ` : ''}${problem}`, {
    details: {key},
    exit: ExitCode.usage,
    suggestion: suggestion ?? (key ? `\`ztctl profile dump ambient\` shows ${key} with its default` : undefined),
  })
}

function show(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'a list' : typeof value === 'object' ? 'a mapping' : JSON.stringify(value)
}

function isLeaf(node: Leaf | SchemaNode): node is Leaf {
  return typeof (node as Leaf).type === 'string' && 'default' in node && typeof (node as Leaf).description === 'string'
}

function isPlainObject(value: unknown): value is Values {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

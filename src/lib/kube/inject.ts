// `ztctl inject` (issue 12 §4, OpenZiti's sidecar deployment modes): the manifests given, with a ztctl
// agent added to every pod template, printed for `kubectl apply -f -`. The agent runs as the identity in a
// Secret (one per workload, `identity.json` as `ztctl enroll` writes it) and, by mode:
//   proxy  - unprivileged (uid 65532, no capabilities, read-only root): each mesh service this identity may
//            dial is bound on 127.0.0.1:PORT (--proxy-port tcp/NAME=PORT, else a stable port), the app dials it;
//   tproxy - the agent captures the mesh services' intercept addresses with nat OUTPUT rules in the pod's own
//            network namespace and answers their names on 127.0.0.1:53 (first in the pod's resolv.conf). It
//            keeps those rules in step with the mesh (services come and go), so the capability stays with the
//            agent: NET_ADMIN (and NET_RAW for iptables, NET_BIND_SERVICE for port 53) as root, every other
//            capability dropped. An init container with NET_ADMIN and NET_RAW checks, before the app starts, that the pod's namespace takes
//            the rules (a pod whose policy strips NET_ADMIN fails at init, with the reason, not at the first
//            connection).
// Injected pods opt out of ambient redirection (they carry their own agent). Objects without a pod template
// pass through unchanged; a template already injected is left as it is (inject twice = inject once).
import {type Document, parseAllDocuments, stringify} from 'yaml'

import {ExitCode, ZtError} from '../errors.js'
import {REDIRECTION_ANNOTATION, REDIRECTION_DISABLED} from './enrollment.js'

export type SidecarMode = 'proxy' | 'tproxy'
export const SIDECAR_CONTAINER = 'ztctl-agent'
export const SIDECAR_INIT_CONTAINER = 'ztctl-init'
export const SIDECAR_ANNOTATION = 'ztctl.io/sidecar'
/** `ztctl.io/inject: "false"` on a pod template keeps it as it is. */
export const INJECT_ANNOTATION = 'ztctl.io/inject'
const IDENTITY_DIR = '/var/run/ztctl/identity'
const HOME = '/var/lib/ztctl'
const MAX_DOCUMENTS = 1000

export interface InjectOptions {
  mode: SidecarMode
  /** the agent image (default: the image `npm run image` builds for this version) */
  image: string
  imagePullPolicy?: string
  /** the Secret holding identity.json; default `ztctl-<workload name>` */
  identitySecret?: string
  /** --proxy-port values for the agent (proxy mode) */
  proxyPorts?: string[]
}

export interface InjectResult {
  /** the manifests, as YAML documents */
  yaml: string
  /** `Kind/name` of each pod template given a sidecar */
  injected: string[]
  /** `Kind/name: why` of each left as it was (already injected, opted out) */
  skipped: string[]
}

type Json = Record<string, unknown>
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)

const badManifest = (message: string, suggestion = 'give Kubernetes manifests in YAML or JSON (several separated by ---), e.g. `kubectl create deployment web --image=nginx --dry-run=client -o yaml`'): ZtError =>
  new ZtError('ZT_ERR_BAD_MANIFEST', message, {exit: ExitCode.usage, suggestion})

/** Inject every pod template of TEXT (the file's content; SOURCE names it in errors). */
export function injectManifests(text: string, source: string, options: InjectOptions): InjectResult {
  const documents = parseAllDocuments(text, {prettyErrors: true, uniqueKeys: true}) as unknown as Document.Parsed[] | {errors: unknown[]}
  if (!Array.isArray(documents)) throw badManifest(`${source} is not YAML`)
  if (documents.length > MAX_DOCUMENTS) throw badManifest(`${source} holds ${documents.length} documents; at most ${MAX_DOCUMENTS}`, 'split it')
  const result: InjectResult = {injected: [], skipped: [], yaml: ''}
  const out: string[] = []
  for (const [index, document] of documents.entries()) {
    const [error] = document.errors
    if (error) {
      const line = error.linePos?.[0]
      throw badManifest(`${source}${line ? `:${line.line}:${line.col}` : ''} (document ${index + 1}): ${error.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`)
    }

    const value = document.toJS({maxAliasCount: 100}) as unknown
    if (value === null || value === undefined) continue // an empty document (a trailing ---)
    if (!isObject(value) || typeof value.kind !== 'string' || typeof value.apiVersion !== 'string') {
      throw badManifest(`${source} (document ${index + 1}) is not a Kubernetes object: it needs apiVersion and kind`)
    }

    const changed = injectObject(value, options, result)
    // (the document's own --- marker is dropped: documents are joined with one below)
    out.push(changed ? stringify(value, {lineWidth: 0}) : document.toString({lineWidth: 0}).replace(/^---[ \t]*\n/, ''))
  }

  if (out.length === 0) throw badManifest(`${source} holds no Kubernetes object`)
  result.yaml = out.map((doc) => doc.replace(/\n*$/, '\n')).join('---\n')
  return result
}

/** Inject OBJECT in place (a List: each item); true when something changed. */
function injectObject(object: Json, options: InjectOptions, result: InjectResult): boolean {
  if (object.kind === 'List' || (typeof object.kind === 'string' && object.kind.endsWith('List') && Array.isArray(object.items))) {
    let changed = false
    for (const item of (object.items as unknown[]) ?? []) if (isObject(item) && injectObject(item, options, result)) changed = true
    return changed
  }

  const metadata = isObject(object.metadata) ? object.metadata : {}
  const name = typeof metadata.name === 'string' ? metadata.name : ''
  const label = `${object.kind as string}/${name || '(no name)'}`
  const template = podTemplateOf(object)
  if (!template) return false
  if (!name) throw badManifest(`a ${object.kind as string} without metadata.name cannot be injected (its identity Secret is named after it)`, 'give it a name')
  const templateMeta = (template.metadata = isObject(template.metadata) ? template.metadata : {}) as Json
  const annotations = (templateMeta.annotations = isObject(templateMeta.annotations) ? templateMeta.annotations : {}) as Json
  const spec = template.spec
  if (!isObject(spec) || !Array.isArray(spec.containers)) throw badManifest(`${label} has a pod template without spec.containers`)
  if (annotations[INJECT_ANNOTATION] === 'false') {
    result.skipped.push(`${label}: ${INJECT_ANNOTATION}: "false"`)
    return false
  }

  if (spec.containers.some((container) => isObject(container) && container.name === SIDECAR_CONTAINER)) {
    result.skipped.push(`${label}: already has a ${SIDECAR_CONTAINER} container`)
    return false
  }

  if (spec.hostNetwork === true && options.mode === 'tproxy') {
    throw badManifest(`${label} uses hostNetwork: a tproxy sidecar would rewrite the node's rules`, 'use --mode proxy for hostNetwork pods')
  }

  annotations[SIDECAR_ANNOTATION] = options.mode
  annotations[REDIRECTION_ANNOTATION] = REDIRECTION_DISABLED
  const volumes = Array.isArray(spec.volumes) ? spec.volumes : []
  spec.volumes = [
    ...volumes,
    {name: 'ztctl-identity', secret: {secretName: options.identitySecret ?? `ztctl-${name}`}},
    {emptyDir: {}, name: 'ztctl-home'},
    {emptyDir: {}, name: 'ztctl-tmp'},
  ]
  spec.containers = [...spec.containers, sidecarContainer(options)]
  if (options.mode === 'tproxy') spec.initContainers = [...(Array.isArray(spec.initContainers) ? spec.initContainers : []), initContainer(options)]
  result.injected.push(label)
  return true
}

/** The pod template of a workload kind, the pod itself for a Pod; undefined for other kinds. */
function podTemplateOf(object: Json): Json | undefined {
  const spec = isObject(object.spec) ? object.spec : undefined
  switch (object.kind) {
    case 'Pod': {
      object.spec ??= {}
      return object
    }

    case 'CronJob': {
      const jobSpec = isObject(spec?.jobTemplate) && isObject(spec.jobTemplate.spec) ? spec.jobTemplate.spec : undefined
      return isObject(jobSpec?.template) ? jobSpec.template : undefined
    }

    case 'DaemonSet':
    case 'Deployment':
    case 'Job':
    case 'ReplicaSet':
    case 'ReplicationController':
    case 'StatefulSet': {
      if (!isObject(spec?.template)) throw badManifest(`${object.kind}/${String((object.metadata as Json | undefined)?.name ?? '')} has no spec.template`)
      return spec.template
    }

    default: {
      return undefined
    }
  }
}

function sidecarContainer(options: InjectOptions): Json {
  // Other agents dial this one at the pod's address (the default would advertise 127.0.0.1).
  const args = ['agent', 'run', '-i', `${IDENTITY_DIR}/identity.json`, '--mode', options.mode, '--admin', '127.0.0.1:15000', '--advertise', '$(POD_IP):15008']
  if (options.mode === 'proxy') for (const port of options.proxyPorts ?? []) args.push('--proxy-port', port)
  else args.push('--dns-resolv-conf', '/etc/resolv.conf')
  return {
    args,
    env: [
      {name: 'POD_IP', valueFrom: {fieldRef: {fieldPath: 'status.podIP'}}},
      {name: 'HOME', value: HOME}, {name: 'SHELL', value: '/bin/sh'}, {name: 'ZTCTL_HOME', value: HOME}, {name: 'NO_COLOR', value: '1'},
    ],
    image: options.image,
    imagePullPolicy: options.imagePullPolicy ?? 'IfNotPresent',
    name: SIDECAR_CONTAINER,
    ports: [{containerPort: 15_008, name: 'ztctl-hbone', protocol: 'TCP'}, {containerPort: 15_020, name: 'ztctl-metrics', protocol: 'TCP'}],
    readinessProbe: {httpGet: {path: '/healthz/ready', port: 15_021}, periodSeconds: 2},
    securityContext: securityContextOf(options.mode),
    volumeMounts: [{mountPath: IDENTITY_DIR, name: 'ztctl-identity', readOnly: true}, {mountPath: HOME, name: 'ztctl-home'}, {mountPath: '/tmp', name: 'ztctl-tmp'}],
  }
}

/** tproxy: the pod's namespace must take nat rules (the same tables the agent writes), checked before the app starts. */
function initContainer(options: InjectOptions): Json {
  return {
    command: ['/bin/sh', '-c', 'iptables -t nat -S OUTPUT >/dev/null && ip route show table local >/dev/null'],
    image: options.image,
    imagePullPolicy: options.imagePullPolicy ?? 'IfNotPresent',
    name: SIDECAR_INIT_CONTAINER,
    securityContext: securityContextOf('tproxy', true),
  }
}

function securityContextOf(mode: SidecarMode, init = false): Json {
  if (mode === 'proxy') {
    return {allowPrivilegeEscalation: false, capabilities: {drop: ['ALL']}, readOnlyRootFilesystem: true, runAsGroup: 65_532, runAsNonRoot: true, runAsUser: 65_532}
  }

  // iptables needs NET_ADMIN and NET_RAW in the effective set, which Kubernetes grants only to uid 0 (no ambient capabilities).
  // The root file system stays writable: with it read-only the runtime mounts the pod's resolv.conf read-only too.
  // The agent also answers DNS on 127.0.0.1:53, a privileged port; the init container only lists rules.
  const add = init ? ['NET_ADMIN', 'NET_RAW'] : ['NET_ADMIN', 'NET_RAW', 'NET_BIND_SERVICE']
  return {allowPrivilegeEscalation: false, capabilities: {add, drop: ['ALL']}, readOnlyRootFilesystem: false, runAsNonRoot: false, runAsUser: 0}
}


const MAX_INPUT_BYTES = 16 * 1024 * 1024

/** The manifests at FILE (`-`: standard input), at most 16 MiB. */
export async function readManifestInput(file: string, stdin: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const {readFile, stat} = await import('node:fs/promises')
  if (file !== '-') {
    try {
      if ((await stat(file)).size > MAX_INPUT_BYTES) throw badManifest(`${file} is larger than 16 MiB`, 'split it')
      return await readFile(file, 'utf8')
    } catch (error) {
      if (error instanceof ZtError) throw error
      throw new ZtError('ZT_ERR_NOT_FOUND', `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {exit: ExitCode.notFound, suggestion: 'give a manifest file, or - to read standard input'})
    }
  }

  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of stdin) {
    size += (chunk as Buffer).length
    if (size > MAX_INPUT_BYTES) throw badManifest('standard input is larger than 16 MiB', 'split it')
    chunks.push(Buffer.from(chunk as Buffer))
  }

  return Buffer.concat(chunks).toString('utf8')
}

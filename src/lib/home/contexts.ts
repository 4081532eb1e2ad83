// Contexts, kubeconfig-style: a named pair of (controller URL, admin identity file), one of them current;
// or, of kind `kubernetes`, where in a cluster the controller runs (src/lib/kube/controller-context.ts).
import path from 'node:path'

import {ExitCode, ZtError} from '../errors.js'
import {type Home, readJsonFile, writeFileAtomic} from './home.js'

export interface Context {
  name: string
  /** https://host:port of the controller (kind kubernetes: where it is, for humans: kubernetes://CONTEXT/NAMESPACE/SERVICE) */
  controller: string
  /** path of the identity file (JSON) used to authenticate (kind kubernetes: secret/ztctl-admin, for humans) */
  identity: string
  /** `kubernetes`: reach an in-cluster controller through a port-forward, as the admin in Secret ztctl-admin */
  kind?: 'kubernetes' | 'local'
  kubernetes?: {context: string; kubeconfig?: string; namespace: string}
}

export interface ContextsFile {
  current?: string
  contexts: Context[]
}

const contextsPath = (home: Home): string => path.join(home.configDir, 'contexts.json')

export async function loadContexts(home: Home): Promise<ContextsFile> {
  let file: ContextsFile | undefined
  try {
    file = await readJsonFile<ContextsFile>(contextsPath(home))
  } catch (error) {
    throw new ZtError('ZT_ERR_CONTEXTS_CORRUPT', `${contextsPath(home)} is not valid JSON`, {
      cause: error,
      suggestion: `fix or delete ${contextsPath(home)}; \`ztctl controller run\` writes a new context`,
    })
  }

  return file ?? {contexts: []}
}

export async function saveContexts(home: Home, file: ContextsFile): Promise<void> {
  await writeFileAtomic(contextsPath(home), JSON.stringify(file, null, 2) + '\n', 0o600)
}

/** Add or replace a context; make it current when asked or when there is none. */
export async function upsertContext(home: Home, context: Context, makeCurrent = true): Promise<void> {
  const file = await loadContexts(home)
  file.contexts = [...file.contexts.filter((c) => c.name !== context.name), context]
  if (makeCurrent || !file.current) file.current = context.name
  await saveContexts(home, file)
}

export async function useContext(home: Home, name: string): Promise<Context> {
  const file = await loadContexts(home)
  const context = findContext(file, name)
  file.current = name
  await saveContexts(home, file)
  return context
}

/** The context a command should use: the --context flag, else the current one. */
export async function currentContext(home: Home, override?: string): Promise<Context> {
  const file = await loadContexts(home)
  const name = override ?? file.current
  if (!name) {
    throw new ZtError('ZT_ERR_NO_CONTEXT', 'no controller context is configured', {
      exit: ExitCode.notFound,
      suggestion: 'start one with `ztctl controller run` (it writes a context), or `ztctl quickstart`',
    })
  }

  return findContext(file, name)
}

function findContext(file: ContextsFile, name: string): Context {
  const context = file.contexts.find((c) => c.name === name)
  if (!context) {
    const known = file.contexts.map((c) => c.name).join(', ') || 'none'
    throw new ZtError('ZT_ERR_CONTEXT_NOT_FOUND', `context "${name}" does not exist (known: ${known})`, {
      exit: ExitCode.notFound,
      suggestion: 'list them with `ztctl context list`',
    })
  }

  return context
}

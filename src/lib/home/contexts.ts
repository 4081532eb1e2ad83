// Contexts, kubeconfig-style: a named pair of (controller URL, admin identity file), one of them current;
// or, of kind `kubernetes`, where in a cluster the controller runs (src/lib/kube/controller-context.ts).
import path from 'node:path'

import {ExitCode, ZtError} from '../errors.js'
import {type Home, readJsonFile, writeFileAtomic} from './home.js'

export interface Context {
  name: string
  /** https://host:port of the controller (kind kubernetes: where it is, for humans: kubernetes://CONTEXT/NAMESPACE/SERVICE) */
  controller: string
  /**
   * The controller's data dir, when this context was written on the controller's host (`controller run`):
   * where `ztctl controller admin` re-issues a locked-out admin.
   */
  controllerDataDir?: string
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

export const contextsPath = (home: Home): string => path.join(home.configDir, 'contexts.json')
export const CONTEXT_NAME = /^[A-Za-z0-9][\w.@-]{0,62}$/

/** What is wrong with a parsed contexts.json, or undefined when it has the expected shape. */
function shapeProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'it is not a JSON object'
  const {contexts, current} = value as Record<string, unknown>
  if (current !== undefined && typeof current !== 'string') return '"current" is not a string'
  if (!Array.isArray(contexts)) return '"contexts" is not a list'
  for (const [index, context] of contexts.entries()) {
    const fields = (typeof context === 'object' && context !== null ? context : {}) as Record<string, unknown>
    for (const field of ['name', 'controller', 'identity']) {
      if (typeof fields[field] !== 'string' || fields[field] === '') return `contexts[${index}] has no "${field}" string`
    }

    if (fields.controllerDataDir !== undefined && typeof fields.controllerDataDir !== 'string') return `contexts[${index}].controllerDataDir is not a string`
  }

  return undefined
}

export async function loadContexts(home: Home): Promise<ContextsFile> {
  const file = contextsPath(home)
  let value: unknown
  try {
    value = await readJsonFile<unknown>(file)
  } catch (error) {
    if (ZtError.is(error)) throw error
    throw corrupt(file, 'it is not valid JSON', error)
  }

  if (value === undefined) return {contexts: []}
  const problem = shapeProblem(value)
  if (problem) throw corrupt(file, problem)
  return value as ContextsFile
}

function corrupt(file: string, problem: string, cause?: unknown): ZtError {
  return new ZtError('ZT_ERR_CONTEXTS_CORRUPT', `${file} cannot be used: ${problem}`, {
    cause,
    suggestion: `fix or delete ${file} (expected {"current": NAME, "contexts": [{"name", "controller", "identity"}]}); \`ztctl controller run\` writes a new context`,
  })
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

export function checkContextName(name: string): string {
  if (CONTEXT_NAME.test(name)) return name
  throw new ZtError('ZT_ERR_INVALID_NAME', `"${name}" is not a valid context name`, {
    exit: ExitCode.usage,
    suggestion: 'use 1–63 letters, digits, ".", "_", "@" or "-", starting with a letter or digit',
  })
}

/** `context add`: a new context; refuses to replace one unless asked. */
export async function addContext(home: Home, context: Context, options: {makeCurrent?: boolean; replace?: boolean} = {}): Promise<Context> {
  checkContextName(context.name)
  const file = await loadContexts(home)
  if (!options.replace && file.contexts.some((c) => c.name === context.name)) {
    throw new ZtError('ZT_ERR_NAME_TAKEN', `a context named "${context.name}" already exists`, {
      exit: ExitCode.conflict,
      suggestion: `pick another name, or \`ztctl context delete ${context.name}\` first`,
    })
  }

  await upsertContext(home, context, options.makeCurrent ?? false)
  return context
}

export async function deleteContext(home: Home, name: string): Promise<{context: Context; current?: string}> {
  const file = await loadContexts(home)
  const context = findContext(file, name)
  file.contexts = file.contexts.filter((c) => c.name !== name)
  if (file.current === name) file.current = file.contexts[0]?.name
  await saveContexts(home, file)
  return {context, current: file.current}
}

export async function renameContext(home: Home, from: string, to: string): Promise<Context> {
  checkContextName(to)
  const file = await loadContexts(home)
  const context = findContext(file, from)
  if (from !== to && file.contexts.some((c) => c.name === to)) {
    throw new ZtError('ZT_ERR_NAME_TAKEN', `a context named "${to}" already exists`, {exit: ExitCode.conflict, suggestion: `delete it first: \`ztctl context delete ${to}\``})
  }

  context.name = to
  if (file.current === from) file.current = to
  await saveContexts(home, file)
  return context
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
      suggestion: 'start one with `ztctl controller run` (it writes a context), `ztctl quickstart`, or `ztctl enroll ADMIN.jwt --context NAME`',
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

// Switching the agents' apps on and off and publishing files (admin side, through the controller's
// resources): `ztctl terminal|file|script config` and `file publish|unpublish`. A first `config` of an
// app switches it on; `--disable` switches it off and keeps its settings.
import path from 'node:path'

import {type AgentApp, type AppName, type PublishedFile, resourceKey} from '../config/types.js'
import {ExitCode, ZtError} from '../errors.js'
import {type ControllerApi, type ResourceList, resourcePath} from './api.js'
import {parseName, parseSubject} from './parse.js'
import {type ChangeOptions, type ChangeResult, commitChange} from './rollout.js'
import {assertIdentityExists} from './tunnels.js'

export interface AppConfigInput {
  addCommands?: string[]
  addUsers?: string[]
  agent: string
  /** script: allow any command line (true), only the listed ones (false); undefined keeps it */
  anyCommand?: boolean
  app: AppName
  /** true: on, false: off, undefined: keep (a new app starts on) */
  enabled?: boolean
  removeCommands?: string[]
  removeUsers?: string[]
  /** script: the directory of runnable scripts; '' removes it */
  scriptDir?: string
  /** terminal: the shell command (words split on spaces); '' restores the default */
  shell?: string
}

export interface AppChange extends ChangeResult {
  app: AgentApp
  /** the app had no configuration on that agent before */
  created: boolean
}

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$/

/** `@identity`, `#role`, … or `*` (any identity of the mesh). */
function parseAllowed(subject: string): string {
  return subject === '*' ? subject : parseSubject(subject)
}

function parseAbsolute(text: string, what: string): string {
  if (!path.isAbsolute(text)) {
    throw new ZtError('ZT_ERR_INVALID_PATH', `${what} "${text}" is not an absolute path`, {exit: ExitCode.usage, suggestion: 'write the path as the agent\'s host sees it, from /'})
  }

  return path.normalize(text)
}

async function existingApps(api: ControllerApi): Promise<AgentApp[]> {
  return (await api.request<ResourceList<AgentApp>>('GET', resourcePath('app'))).items
}

/** Change an app's settings on one agent; succeeds once that agent applied it (OPTIONS: --wait, --dry-run). */
export async function configureApp(api: ControllerApi, input: AppConfigInput, options: ChangeOptions = {}): Promise<AppChange> {
  const agent = parseName(input.agent, 'agent name')
  const existing = (await existingApps(api)).find((app) => app.agent === agent && app.app === input.app)
  if (!existing) await assertIdentityExists(api, agent)
  const remove = new Set((input.removeUsers ?? []).map((subject) => parseAllowed(subject)))
  const allow = [...new Set([...(existing?.allow ?? []), ...(input.addUsers ?? []).map((subject) => parseAllowed(subject))])].filter((subject) => !remove.has(subject))
  const app: AgentApp = {...existing, agent, allow, app: input.app, enabled: input.enabled ?? existing?.enabled ?? true}
  if (input.shell !== undefined) {
    const words = input.shell.trim().split(/\s+/).filter(Boolean)
    if (words.length > 0) app.shell = [parseAbsolute(words[0], 'shell'), ...words.slice(1)]
    else delete app.shell
  }

  if (input.addCommands || input.removeCommands) {
    const drop = new Set(input.removeCommands ?? [])
    const commands = [...new Set([...(app.commands ?? []), ...(input.addCommands ?? []).map((command) => parseCommand(command))])].filter((command) => !drop.has(command))
    if (commands.length > 0) app.commands = commands
    else delete app.commands
  }

  if (input.scriptDir !== undefined) {
    if (input.scriptDir === '') delete app.scriptDir
    else app.scriptDir = parseAbsolute(input.scriptDir, 'script directory')
  }

  if (input.anyCommand !== undefined) {
    if (input.anyCommand) app.anyCommand = true
    else delete app.anyCommand
  }

  const key = resourceKey('app', app)
  const result = await commitChange(api, options, {body: app, method: 'PUT', path: resourcePath('app', key)}, () => ({owners: [agent], resource: {key, kind: 'app'}, watchers: []}))
  return {...result, app, created: !existing}
}

/** A program the script app may run: an absolute path, or a bare name looked up on the agent's PATH. */
function parseCommand(text: string): string {
  if (path.isAbsolute(text) || /^[A-Za-z0-9._+-]{1,255}$/.test(text)) return text
  throw new ZtError('ZT_ERR_INVALID_COMMAND', `"${text}" is not a command name or an absolute path`, {
    exit: ExitCode.usage,
    suggestion: 'write a program name (uname) or its absolute path (/usr/local/bin/backup); arguments are given at `script run`',
  })
}

/** Publish a file of AGENT's host; succeeds once AGENT applied it (and could read the file). */
export async function publishFile(api: ControllerApi, input: {agent: string; name?: string; path: string}, options: ChangeOptions = {}): Promise<ChangeResult & {file: PublishedFile}> {
  const agent = parseName(input.agent, 'agent name')
  const filePath = path.resolve(input.path)
  const name = input.name ?? path.basename(filePath)
  if (!FILE_NAME.test(name)) {
    throw new ZtError('ZT_ERR_INVALID_NAME', `"${name}" is not a valid file name`, {
      exit: ExitCode.usage,
      suggestion: 'use --as NAME: letters, digits, ".", "_", "+" and "-", starting with a letter or digit (no "/" or "@")',
    })
  }

  const fileApp = (await existingApps(api)).find((app) => app.agent === agent && app.app === 'file')
  if (!fileApp?.enabled) {
    throw new ZtError('ZT_ERR_APP_OFF', `the file app is off on agent ${agent}, so it would not serve ${name}`, {
      exit: ExitCode.notFound,
      suggestion: `switch it on first, with who may fetch: \`ztctl file config --agent ${agent} --add-user '*'\``,
    })
  }

  const file: PublishedFile = {agent, name, path: filePath}
  const key = resourceKey('file', file)
  const result = await commitChange(api, options, {body: file, method: 'PUT', path: resourcePath('file', key)}, () => ({owners: [agent], resource: {key, kind: 'file'}, watchers: []}))
  return {...result, file}
}

export async function unpublishFile(api: ControllerApi, input: {agent: string; name: string}, options: ChangeOptions = {}): Promise<ChangeResult> {
  const agent = parseName(input.agent, 'agent name')
  try {
    return await commitChange(api, options, {method: 'DELETE', path: resourcePath('file', `${input.name}@${agent}`)}, () => ({owners: [agent], watchers: []}))
  } catch (error) {
    if (ZtError.is(error) && error.code === 'ZT_ERR_NOT_FOUND') {
      throw new ZtError('ZT_ERR_NOT_FOUND', `agent ${input.agent} publishes no file "${input.name}"`, {exit: ExitCode.notFound, suggestion: 'see the published files with `ztctl file list`'})
    }

    throw error
  }
}

/** The app's settings in ZTM's words, one per line (what `config` prints). */
export function describeApp(app: AgentApp): string {
  const lines = [`Agent: ${app.agent}`, `App: ${app.app} (${app.enabled ? 'on' : 'off'})`]
  if (app.app === 'terminal') lines.push(`Shell: ${app.shell?.join(' ') ?? '(default: $SHELL, else /bin/sh)'}`)
  if (app.app === 'script') {
    lines.push(`Script directory: ${app.scriptDir ?? '(none)'}`, `Any command: ${app.anyCommand ? 'yes' : 'no'}`, 'Commands:', ...(app.commands ?? ['(none)']).map((command) => `  ${command}`))
  }

  lines.push('Allowed:', ...(app.allow.length > 0 ? app.allow : ['(nobody yet: add one with --add-user)']).map((subject) => `  ${subject}`))
  return lines.join('\n')
}

// What the user meant by the words before the first flag: a command (with arguments after it), a topic,
// or nothing we have — then the closest command or topic, compared word by word, so that
// `proxy-confg all agent-a` suggests `proxy-config all agent-a` and `proxy-config certificate` (an
// alias) is found rather than corrected to another command. Used by the not-found hook and by help.
import {closest} from '../closest.js'
import {ExitCode, ZtError} from '../errors.js'

/** Topic aliases (istioctl's spellings): every command under the topic is also reachable under these. */
export const TOPIC_ALIASES: Readonly<Record<string, string>> = {pc: 'proxy-config', zc: 'proxy-config'}

export type Lookup =
  /** a command: PATH is its id (or alias) as words, REST the words after it */
  | {corrected: boolean; kind: 'command'; path: string[]; rest: string[]}
  /** a topic (a topic alias is resolved to the real one) */
  | {children: string[]; corrected: boolean; kind: 'topic'; path: string[]; rest: string[]}
  | {kind: 'none'; rest: string[]}

interface Node {
  children: Map<string, Node>
  command: boolean
  /** a real command (not only aliases) is at or under this node: listed as a topic's command */
  real: boolean
}

function buildTree(commandIds: readonly string[], aliasIds: ReadonlySet<string>): Node {
  const root: Node = {children: new Map(), command: false, real: false}
  for (const id of commandIds) {
    let node = root
    const real = !aliasIds.has(id)
    for (const word of id.split(/[: ]/)) {
      let child = node.children.get(word)
      if (!child) {
        child = {children: new Map(), command: false, real: false}
        node.children.set(word, child)
      }

      child.real ||= real
      node = child
    }

    node.command = true
  }

  return root
}

/** The closest of NAMES to WORD within a typo's distance (a quarter of its length, at least 1), if any. */
const closestWord = (word: string, names: Iterable<string>): string | undefined => closest(word, names, Math.max(1, Math.floor(word.length / 4)))

/** What WORDS name among COMMAND_IDS (aliases included; ALIAS_IDS are not listed as a topic's commands). */
export function lookupCommand(commandIds: readonly string[], words: readonly string[], aliasIds: ReadonlySet<string> = new Set()): Lookup {
  const root = buildTree(commandIds, aliasIds)
  const path: string[] = []
  let node = root
  let corrected = false
  let index = 0
  for (; index < words.length; index++) {
    const word = words[index]
    if (word.startsWith('-')) break
    let next = node.children.get(word)
    let name = word
    if (!next && !node.command) {
      const fix = closestWord(word, node.children.keys())
      if (fix) {
        name = fix
        next = node.children.get(fix)
        corrected = true
      }
    }

    if (!next) break
    path.push(name)
    node = next
  }

  const rest = words.slice(index)
  if (path.length === 0) return {kind: 'none', rest}
  if (node.command) return {corrected, kind: 'command', path, rest}
  const alias = TOPIC_ALIASES[path[0]]
  if (alias) return {...lookupCommand(commandIds, [alias, ...path.slice(1), ...rest], aliasIds), corrected} as Lookup
  const children = [...node.children].filter(([, child]) => child.real).map(([name]) => name)
  return {children: children.sort(), corrected, kind: 'topic', path, rest}
}

/** The error for words that name no command (exit 127), or name one followed by words it does not take (exit 2). */
export function unknownCommandError(lookup: Lookup, typed: readonly string[]): ZtError {
  const shown = typed.filter((word) => !word.startsWith('-')).join(' ')
  if (lookup.kind === 'command' && !lookup.corrected) {
    const command = lookup.path.join(' ')
    return new ZtError('ZT_ERR_USAGE', `\`ztctl ${command}\` takes no argument ${lookup.rest.map((word) => JSON.stringify(word)).join(' ')}`, {
      exit: ExitCode.usage,
      suggestion: `see \`ztctl ${command} --help\``,
    })
  }

  const error = (suggestion: string): ZtError => new ZtError('ZT_ERR_UNKNOWN_COMMAND', `"${shown}" is not a ztctl command`, {exit: ExitCode.unknownCommand, suggestion})
  if (lookup.kind === 'command') return error(`did you mean \`ztctl ${[...lookup.path, ...lookup.rest].join(' ')}\`?`)
  if (lookup.kind === 'topic') {
    const topic = lookup.path.join(' ')
    const list = `\`ztctl ${topic}\` has: ${lookup.children.join(', ')} (see \`ztctl ${topic} --help\`)`
    return error(lookup.corrected ? `did you mean \`ztctl ${topic}\`? ${list}` : list)
  }

  return error('run `ztctl --help` for the list of commands')
}

/** The alias ids of an oclif config's commands (alias entries carry their command's `aliases`). */
export function aliasIdsOf(commands: readonly {aliases?: string[]; hiddenAliases?: string[]}[]): Set<string> {
  return new Set(commands.flatMap((command) => [...(command.aliases ?? []), ...(command.hiddenAliases ?? [])]))
}

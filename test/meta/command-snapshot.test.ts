// The CLI's surface as a reviewable file (as the sf CLI's command-snapshot.json): every command with its
// aliases, arguments and flags (char, type, options, default, multiple, required, --no-). A change to
// any of them fails here until test/meta/command-snapshot.json is regenerated with
// `ZTCTL_UPDATE_SNAPSHOT=1 node --import tsx --test test/meta/command-snapshot.test.ts`, so the diff shows
// up in review.
import assert from 'node:assert/strict'
import {readFile, writeFile} from 'node:fs/promises'
import {test} from 'node:test'
import {fileURLToPath} from 'node:url'

const MANIFEST = fileURLToPath(new URL('../../oclif.manifest.json', import.meta.url))
const SNAPSHOT = fileURLToPath(new URL('command-snapshot.json', import.meta.url))

interface ManifestFlag {
  allowNo?: boolean
  char?: string
  default?: unknown
  env?: string
  multiple?: boolean
  options?: string[]
  required?: boolean
  type: 'boolean' | 'option'
}

interface ManifestCommand {
  aliases?: string[]
  args?: Record<string, {options?: string[]; required?: boolean}>
  flags: Record<string, ManifestFlag>
  hiddenAliases?: string[]
}

function surface(manifest: {commands: Record<string, ManifestCommand>}): Record<string, unknown> {
  return Object.fromEntries(Object.entries(manifest.commands).sort(([a], [b]) => a.localeCompare(b)).map(([id, command]) => [id, {
    aliases: [...(command.aliases ?? []), ...(command.hiddenAliases ?? [])].sort(),
    args: Object.entries(command.args ?? {}).map(([name, arg]) => `${name}${arg.required ? '' : '?'}${arg.options ? `=${arg.options.join('|')}` : ''}`),
    flags: Object.fromEntries(Object.entries(command.flags).sort(([a], [b]) => a.localeCompare(b)).map(([name, flag]) => [name, [
      flag.char ? `-${flag.char}` : undefined,
      flag.type === 'boolean' ? (flag.allowNo ? 'boolean --no-' : 'boolean') : 'value',
      flag.options ? `options=${flag.options.join('|')}` : undefined,
      flag.default === undefined || flag.default === false ? undefined : `default=${String(flag.default)}`,
      flag.multiple ? 'multiple' : undefined,
      flag.required ? 'required' : undefined,
      flag.env ? `env=${flag.env}` : undefined,
    ].filter(Boolean).join(' ')])),
  }]))
}

test('every command\'s flags, arguments and aliases match the reviewed snapshot', async () => {
  const current = surface(JSON.parse(await readFile(MANIFEST, 'utf8')))
  if (process.env.ZTCTL_UPDATE_SNAPSHOT === '1') await writeFile(SNAPSHOT, JSON.stringify(current, null, 2) + '\n')
  const reviewed = JSON.parse(await readFile(SNAPSHOT, 'utf8')) as Record<string, unknown>
  assert.deepEqual(Object.keys(current), Object.keys(reviewed), 'commands added or removed: regenerate the snapshot (see the header) and review the diff')
  for (const id of Object.keys(current)) {
    assert.deepEqual(current[id], reviewed[id], `the surface of \`ztctl ${id.replaceAll(':', ' ')}\` changed: regenerate the snapshot (see the header) and review the diff`)
  }
})

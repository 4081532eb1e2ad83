// Shell completion through @oclif/plugin-autocomplete: the bash and zsh scripts generate, parse in
// their shells, and bash really completes topics, commands and flags.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'

import {runCli} from '../helpers/controller.js'

test('completion scripts generate for bash and zsh, and bash completes commands and flags', async (t) => {
  const cache = await mkdtemp(path.join(tmpdir(), 'ztctl-complete-'))
  t.after(() => rm(cache, {force: true, recursive: true}))
  const env = {...process.env, NO_COLOR: '1', ZTCTL_CACHE_DIR: cache}
  for (const shell of ['bash', 'zsh']) {
    const setup = await runCli(['autocomplete', shell, '--refresh-cache'], env)
    assert.equal(setup.code, 0, setup.stderr)
    const script = await runCli(['autocomplete', 'script', shell], env)
    assert.equal(script.code, 0, script.stderr)
    assert.match(script.stdout, new RegExp(`ZTCTL_AC_${shell.toUpperCase()}_(SETUP|COMPFUNC)_PATH=${cache}`))
  }

  const bash = path.join(cache, 'autocomplete/functions/bash/ztctl.bash')
  const zsh = path.join(cache, 'autocomplete/functions/zsh/_ztctl')
  execFileSync('bash', ['-n', bash])
  execFileSync('zsh', ['-n', zsh])
  const zshText = await readFile(zsh, 'utf8')
  assert.match(zshText, /^#compdef ztctl/)
  for (const name of ['tunnel', 'proxy-config', 'proxy-status', 'quickstart', 'logs']) assert.ok(zshText.includes(`"${name}[`), `zsh completes ${name}`)

  const complete = (line: string): string[] => {
    const words = line.split(' ')
    const out = execFileSync('bash', ['-c', `source "$1"; COMP_WORDS=(${words.map((word) => `'${word}'`).join(' ')}); COMP_CWORD=${words.length - 1}; COMP_LINE='${line}'; _ztctl_autocomplete; printf '%s\\n' "\${COMPREPLY[@]}"`, 'complete', bash], {encoding: 'utf8'})
    return [...new Set(out.split('\n').filter(Boolean))]
  }

  assert.deepEqual(complete('ztctl tun'), ['tunnel'])
  assert.ok(complete('ztctl tunnel ').includes('describe'), 'commands of a topic')
  assert.deepEqual(complete('ztctl tunnel open inbound --ag'), ['--agent'])
  assert.ok(complete('ztctl proxy-status --').includes('--watch'))
})

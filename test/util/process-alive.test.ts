// processAlive() (src/lib/util/process-alive.ts) on real processes: this one, a child that ran and was
// reaped, and pid 1 (another user's when the tests do not run as root: EPERM still means alive).
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {test} from 'node:test'

import {processAlive} from '../../src/lib/util/process-alive.js'

test('a running process is alive, a reaped one is not', async () => {
  assert.equal(processAlive(process.pid), true)
  assert.equal(processAlive(1), true)
  const child = spawn(process.execPath, ['-e', ''], {stdio: 'ignore'})
  await once(child, 'exit')
  assert.equal(processAlive(child.pid!), false)
})

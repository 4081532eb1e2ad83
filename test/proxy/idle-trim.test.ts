// The idle trim's parts, in this (real) process with the real addon: the smaps parser and the mapping
// choice, the addon's refusals (never a crash, never a page of data lost), a real discard of the Node
// binary's clean pages, and the trimmer's schedule. test/proxy/agent-process.test.ts runs it in an agent.
import assert from 'node:assert/strict'
import {EventEmitter} from 'node:events'
import {readFileSync, realpathSync} from 'node:fs'
import {test} from 'node:test'

import {ZtError} from '../../src/lib/errors.js'
import {discardFilePages, mallocTrim} from '../../src/lib/netns/native.js'
import {discardableMappings, parseSmaps, readMemoryStatus, startIdleTrim, type TrimReport, trimMemory} from '../../src/lib/proxy/daemon/idle-trim.js'
import {waitFor} from './helpers.js'

const NODE = realpathSync(process.execPath)
const PAGE = 4096n
const smaps = () => parseSmaps(readFileSync('/proc/self/smaps', 'utf8'))

test('parseSmaps and discardableMappings: only read-only mappings of the binary without private pages', () => {
  const text = [
    '00400000-00f3e000 r--p 00000000 fd:01 123 /opt/node/bin/node',
    'Size:              11512 kB',
    'Rss:                8248 kB',
    'Anonymous:             0 kB',
    'AnonHugePages:         0 kB',
    'Swap:                  0 kB',
    'SwapPss:               0 kB',
    '00f42000-03730000 r-xp 00b42000 fd:01 123 /opt/node/bin/node',
    'Rss:               17272 kB',
    'Anonymous:             0 kB',
    'Swap:                  0 kB',
    '06e47000-06e4b000 r--p 06a46000 fd:01 123 /opt/node/bin/node',
    'Rss:                  16 kB',
    'Anonymous:             8 kB',
    '06e4b000-06e76000 rw-p 06a4a000 fd:01 123 /opt/node/bin/node',
    'Anonymous:           132 kB',
    '06e80000-06e90000 r--p 06b00000 fd:01 123 /opt/node/bin/node',
    'Anonymous:             0 kB',
    'Swap:                  8 kB',
    '7f0000000000-7f0000021000 rw-p 00000000 00:00 0 ',
    'Anonymous:           132 kB',
    '7ff3b3f64000-7ff3b40ba000 r-xp 00026000 fd:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6',
    'Anonymous:             0 kB',
  ].join('\n')
  const mappings = parseSmaps(text)
  assert.equal(mappings.length, 7)
  assert.deepEqual(mappings[0], {anonymousKiB: 0, end: 0xF3_E0_00n, path: '/opt/node/bin/node', perms: 'r--p', rssKiB: 8248, start: 0x40_00_00n, swapKiB: 0})
  assert.equal(mappings[5]!.path, '')
  assert.deepEqual(discardableMappings(mappings, '/opt/node/bin/node').map((mapping) => mapping.start.toString(16)), ['400000', 'f42000'])
})

test('readMemoryStatus reads VmRSS, RssAnon and RssFile', () => {
  const status = readMemoryStatus()!
  assert.ok(status.rssKiB > 0 && status.anonKiB > 0 && status.fileKiB > 0, JSON.stringify(status))
  assert.ok(Math.abs(status.rssKiB - status.anonKiB - status.fileKiB) < 4096, JSON.stringify(status))
  assert.equal(readMemoryStatus(2 ** 22 + 1), undefined)
})

test('mallocTrim and discardFilePages refuse anything but whole pages of clean read-only file mappings, with a ZtError', () => {
  assert.equal(typeof mallocTrim(), 'boolean')
  const mappings = smaps()
  const clean = discardableMappings(mappings, NODE)[0]!
  const writable = mappings.find((mapping) => mapping.path === NODE && mapping.perms.startsWith('rw'))!
  const anonymous = mappings.find((mapping) => mapping.path === '' && mapping.perms === 'rw-p' && mapping.anonymousKiB > 0)!
  const cow = mappings.find((mapping) => mapping.path === NODE && mapping.perms === 'r--p' && mapping.anonymousKiB > 0)
  // A live buffer: its bytes must survive every refused call.
  const data = Buffer.alloc(1 << 20, 0x5A)
  const refusals: [string, bigint, bigint, RegExp, string][] = [
    ['unaligned start', clean.start + 1n, PAGE, /not a non-empty range of whole/, 'ZT_ERR_MADVISE_ARGS'],
    ['unaligned length', clean.start, PAGE + 1n, /not a non-empty range of whole/, 'ZT_ERR_MADVISE_ARGS'],
    ['empty', clean.start, 0n, /not a non-empty range of whole/, 'ZT_ERR_MADVISE_ARGS'],
    ['writable mapping of the binary', writable.start, PAGE, /is writable \(rw-p\)/, 'ZT_ERR_MADVISE_REFUSED'],
    ['anonymous mapping', anonymous.start, PAGE, /is writable|anonymous/, 'ZT_ERR_MADVISE_REFUSED'],
    ['nothing mapped', PAGE, PAGE, /is not mapped/, 'ZT_ERR_MADVISE_REFUSED'],
  ]
  // A range that starts in a clean mapping and runs into the next, adjacent one that is not clean.
  const cleanSet = new Set(discardableMappings(mappings, NODE))
  const edge = mappings.findIndex((mapping, i) => cleanSet.has(mapping) && mappings[i + 1]?.start === mapping.end && !cleanSet.has(mappings[i + 1]!))
  if (edge >= 0) refusals.push(['range running past a clean mapping', mappings[edge]!.end - PAGE, 2n * PAGE, /writable|anonymous|private/, 'ZT_ERR_MADVISE_REFUSED'])
  const reserved = mappings.find((mapping) => mapping.path === '' && mapping.perms === '---p')
  if (reserved) refusals.push(['read-only anonymous mapping', reserved.start, PAGE, /is anonymous, not backed by a file/, 'ZT_ERR_MADVISE_REFUSED'])
  if (cow) refusals.push(['read-only mapping holding copy-on-write pages', cow.start, cow.end - cow.start, /private \(copy-on-write\) pages/, 'ZT_ERR_MADVISE_REFUSED'])
  for (const [what, start, length, message, errno] of refusals) {
    assert.throws(() => discardFilePages(start, length), (error: unknown) => {
      assert.ok(ZtError.is(error), what)
      assert.equal(error.code, 'ZT_ERR_MEMORY', what)
      assert.equal(error.details?.errno, errno, what)
      assert.match(error.message, message, what)
      return true
    }, what)
  }

  for (const bad of [-1, 1.5, '4096', undefined]) {
    assert.throws(() => discardFilePages(bad as unknown as bigint, PAGE), (error: unknown) => ZtError.is(error) && error.details?.errno === 'ZT_ERR_MADVISE_ARGS')
  }

  assert.ok(data.every((byte) => byte === 0x5A), 'no byte of live data changed')
})

test('discardFilePages drops the clean pages of the Node binary; the process runs on as they fault back in', () => {
  const before = readMemoryStatus()!
  for (const mapping of discardableMappings(smaps(), NODE)) discardFilePages(mapping.start, mapping.end - mapping.start)
  const after = readMemoryStatus()!
  assert.ok(after.fileKiB < before.fileKiB, `RssFile ${before.fileKiB} → ${after.fileKiB} kB`)
  assert.equal(JSON.stringify({a: [1, 2, 3]}), '{"a":[1,2,3]}')
  assert.equal(new Intl.NumberFormat('de-DE').format(1234.5), '1.234,5', 'ICU data (read-only data of the binary) reads back')
})

test('trimMemory runs GC, malloc_trim and the discard, and stops between steps when told', async () => {
  const report = await trimMemory()
  assert.deepEqual(report.errors, [])
  assert.ok(report.mappings > 0 && report.discardedBytes > 0, JSON.stringify(report))
  assert.ok(report.ms.gc !== undefined && report.ms.mallocTrim !== undefined && report.ms.discard !== undefined)
  assert.ok(report.after!.fileKiB < report.before!.fileKiB, JSON.stringify(report))

  let steps = 0
  const partial = await trimMemory({proceed: () => steps++ < 1})
  assert.equal(partial.stoppedBefore, 'mallocTrim')
  assert.deepEqual(Object.keys(partial.ms), ['gc'])
  assert.equal(partial.mappings, 0)
})

test('startIdleTrim: once after idleMs without connections, again only after a connection closed, never while one is open, nothing after stop', async () => {
  const source = Object.assign(new EventEmitter(), {size: 0})
  const reports: TrimReport[] = []
  let close!: () => void
  const closed = new Promise<void>((resolve) => {
    close = resolve
  })
  startIdleTrim({closed, idleMs: 150, onTrim: (report) => reports.push(report), source})
  await waitFor('the first trim', () => reports.length === 1)
  await new Promise((resolve) => setTimeout(resolve, 500))
  assert.equal(reports.length, 1, 'no connection, no second trim')

  // A connection opens and closes, another opens before idleMs has passed and stays open.
  source.size = 1
  source.size = 0
  source.emit('empty')
  await new Promise((resolve) => setTimeout(resolve, 50))
  source.size = 1
  await new Promise((resolve) => setTimeout(resolve, 400))
  assert.equal(reports.length, 1, 'no trim while a connection is open')
  source.size = 0
  source.emit('empty')
  await waitFor('the trim after the last connection closed', () => reports.length === 2)

  close()
  await closed
  source.emit('empty')
  await new Promise((resolve) => setTimeout(resolve, 400))
  assert.equal(reports.length, 2, 'stopped with the agent')
  assert.equal(source.listenerCount('empty'), 0)
})

// The Store contract against the SQLite backend (a fresh data dir per test). The same suite runs against
// a real kube-apiserver in test/k8s/store.test.ts.
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {openSqliteStore} from '../../src/lib/controller/store/sqlite.js'
import {storeContract} from './store-contract.js'

storeContract('sqlite', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ztctl-store-'))
  t.after(() => rm(dir, {force: true, recursive: true}))
  return {open: () => openSqliteStore(dir)}
}, {replicas: false})

// `ztctl controller run --hub`: a hub inside the controller process. Its identity (role `hub`) is issued
// here, kept in the data dir and renewed at half-life here; its configuration comes straight from the
// store (every commit is applied), not over the config stream. Everything else is `ztctl hub run`.
import path from 'node:path'

import {readIdentityFile, type IdentityFile} from '../identity/file.js'
import {createKeyAndCsr} from '../pki/pki.js'
import type {Hub} from '../proxy/daemon/hub.js'
import type {ApplyConfig, ConfigSource, ConfigSourceStatus} from '../proxy/state/config-source.js'
import {validateSnapshot} from '../proxy/state/state.js'
import {issueIdentityCert} from './issue.js'
import {ensureLocalIdentity} from './local-identity.js'
import type {ControllerServices} from './routes/types.js'
import type {Store} from './store/store.js'

export const DEFAULT_EMBEDDED_HUB = {listen: '0.0.0.0:15009', name: 'hub'}

/** The store as a configuration source: the snapshot now, then again after every commit (in order). */
export class StoreConfigSource implements ConfigSource {
  readonly kind = 'store'
  private unsubscribe?: () => void
  private version = 0
  private lastError?: string

  constructor(private readonly store: Store) {}

  async start(apply: ApplyConfig): Promise<void> {
    let applying = Promise.resolve()
    const next = (): void => {
      applying = applying.then(async () => {
        const {resources, version} = await this.store.snapshot()
        if (version === this.version) return
        await apply({snapshot: validateSnapshot(resources), version})
        this.version = version
        this.lastError = undefined
      }).catch((error: Error) => {
        this.lastError = error.message
      })
    }

    this.unsubscribe = this.store.onCommit(next)
    next()
    await applying
  }

  /** A hub acts on no resource of its own: it has no statuses to report. */
  report(): void {}

  status(): ConfigSourceStatus {
    return {connected: true, lastError: this.lastError, source: 'store', version: this.version}
  }

  async close(): Promise<void> {
    this.unsubscribe?.()
  }
}

export async function startEmbeddedHub(services: ControllerServices, options: {dataDir: string; listen: string; logLevel?: import('../proxy/observe/log.js').LogLevel; name: string}): Promise<Hub> {
  const file = path.join(options.dataDir, `${options.name}.identity.json`)
  await ensureLocalIdentity(services, file, {name: options.name, roles: ['hub']})
  const identity = await readIdentityFile(file)
  const {runHub} = await import('../proxy/daemon/hub.js')
  return runHub({
    buildVersion: services.version,
    configSource: new StoreConfigSource(services.store),
    identity,
    identityFile: file,
    listen: options.listen,
    logDestination: 2,
    logLevel: options.logLevel,
    renewIdentity: (current) => reissue(services, current),
  })
}

/** A fresh key and certificate for an identity the controller itself holds. */
async function reissue(services: ControllerServices, current: IdentityFile): Promise<IdentityFile> {
  const record = await services.store.getIdentity(current.name)
  if (!record) throw new Error(`identity "${current.name}" no longer exists`)
  const {csrPem, keyPem} = await createKeyAndCsr(current.name)
  const issued = await issueIdentityCert(services, record, csrPem)
  await services.store.recordCert(issued.record)
  return {...current, ca: services.ca.bundle, cert: issued.cert, key: keyPem}
}

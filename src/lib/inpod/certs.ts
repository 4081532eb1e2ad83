// One certificate per service account the node agent serves (`spiffe://<td>/ns/<ns>/sa/<sa>`): asked
// for on the first workload of that account, renewed at half-life, dropped when its last workload
// goes. The key never leaves this process; the controller signs a CSR (POST /v1/workload-certs).
import {certInfo} from '../pki/cert-info.js'
import {createKeyAndCsr} from '../pki/pki.js'
import {Credentials} from '../proxy/hbone/tls.js'

export interface WorkloadCertRequest {
  csr: string
  namespace: string
  serviceAccount: string
}

export type IssueWorkloadCert = (request: WorkloadCertRequest) => Promise<{ca: string; cert: string; spiffe: string}>

export interface WorkloadCertInfo {
  namespace: string
  notAfter: string
  serial: string
  serviceAccount: string
  spiffe: string
}

interface Entry {
  credentials?: Credentials
  /** the last first issue that failed: until ISSUE_RETRY_MS after it, get() refuses at once */
  failure?: {at: number; message: string}
  namespace: string
  pending?: Promise<Credentials>
  serviceAccount: string
  timer?: NodeJS.Timeout
}

/** A first issue that takes longer fails: whatever waits for the certificate (a pod's connections) waits at most this long. */
export const ISSUE_TIMEOUT_MS = 10_000
/** After a failed first issue, asked again no sooner than this; meanwhile the workload's connections are refused. */
export const ISSUE_RETRY_MS = 5000
const MIN_RETRY_MS = 500
const MAX_RETRY_MS = 60_000

export const serviceAccountKey = (namespace: string, serviceAccount: string): string => `${namespace}/${serviceAccount}`

export class WorkloadCertificates {
  private readonly entries = new Map<string, Entry>()

  constructor(
    private readonly issue: IssueWorkloadCert,
    private readonly onEvent: (message: string, fields: Record<string, unknown>) => void = () => {},
    private readonly timing = {issueTimeoutMs: ISSUE_TIMEOUT_MS, retryMs: ISSUE_RETRY_MS},
  ) {}

  /** The credentials of NAMESPACE/SERVICE_ACCOUNT, issued on first use; concurrent callers share one request. */
  async get(namespace: string, serviceAccount: string): Promise<Credentials> {
    const key = serviceAccountKey(namespace, serviceAccount)
    let entry = this.entries.get(key)
    if (!entry) {
      entry = {namespace, serviceAccount}
      this.entries.set(key, entry)
    }

    if (entry.credentials) return entry.credentials
    const current = entry
    const {failure} = current
    const {issueTimeoutMs, retryMs} = this.timing
    const sinceFailure = failure ? Date.now() - failure.at : Infinity
    if (!current.pending && sinceFailure < retryMs) throw new Error(`no certificate for ${key} yet (${failure!.message}); asking again in ${retryMs - sinceFailure} ms`)
    current.pending ??= withTimeout(this.request(current), issueTimeoutMs, `issuing the certificate of ${key} took over ${issueTimeoutMs} ms`)
      .then((credentials) => {
        current.credentials = credentials
        current.failure = undefined
        this.scheduleRenewal(current, credentials)
        return credentials
      })
      .catch((error: unknown) => {
        current.failure = {at: Date.now(), message: (error as Error).message}
        throw error
      })
      .finally(() => {
        current.pending = undefined
      })
    return current.pending
  }

  /** Keep only these service accounts (keys from serviceAccountKey); the rest are forgotten. */
  retain(keys: ReadonlySet<string>): void {
    for (const [key, entry] of this.entries) {
      if (keys.has(key)) continue
      clearTimeout(entry.timer)
      this.entries.delete(key)
    }
  }

  list(): WorkloadCertInfo[] {
    return [...this.entries.values()].flatMap((entry) => {
      if (!entry.credentials) return []
      const {certificate, identity} = entry.credentials
      return [{namespace: entry.namespace, notAfter: certificate.notAfter.toISOString(), serial: certificate.serial, serviceAccount: entry.serviceAccount, spiffe: identity.spiffe}]
    })
  }

  close(): void {
    this.retain(new Set())
  }

  private async request(entry: Entry): Promise<Credentials> {
    const {csrPem, keyPem} = await createKeyAndCsr(entry.serviceAccount)
    const issued = await this.issue({csr: csrPem, namespace: entry.namespace, serviceAccount: entry.serviceAccount})
    const identity = {ca: issued.ca, cert: issued.cert, controller: '', key: keyPem, name: entry.serviceAccount, spiffe: issued.spiffe, version: 1 as const}
    if (entry.credentials) {
      entry.credentials.update(identity)
      return entry.credentials
    }

    return new Credentials(identity)
  }

  private scheduleRenewal(entry: Entry, credentials: Credentials, retryMs = 0): void {
    const {notAfter, notBefore} = certInfo(credentials.identity.cert)
    const halfLife = notBefore.getTime() + (notAfter.getTime() - notBefore.getTime()) / 2
    const delay = retryMs > 0 ? retryMs : Math.max(0, halfLife - Date.now())
    clearTimeout(entry.timer)
    entry.timer = setTimeout(() => {
      const key = serviceAccountKey(entry.namespace, entry.serviceAccount)
      if (this.entries.get(key) !== entry) return
      this.request(entry)
        .then(() => {
          this.onEvent('workload certificate renewed', {serial: credentials.certificate.serial, spiffe: credentials.identity.spiffe})
          this.scheduleRenewal(entry, credentials)
        })
        .catch((error: unknown) => {
          const next = Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, retryMs * 2))
          this.onEvent('workload certificate renewal failed; still serving with the current one', {error: (error as Error).message, retryInMs: next, spiffe: credentials.identity.spiffe})
          this.scheduleRenewal(entry, credentials, next)
        })
    }, Math.min(delay, 2_147_483_647))
    entry.timer.unref()
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms)
    timer.unref()
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

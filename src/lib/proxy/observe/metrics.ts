// Prometheus metrics with Istio's names and labels (ztunnel's CommonTrafficLabels, in its order;
// values we do not know are `unknown`). Counters live in one map per label set, updated once per
// connection (open, close), never per byte.

/** a hub reports the relays it carries (their bytes are the inner sessions' ciphertext) */
export type Reporter = 'destination' | 'hub' | 'source'
/** ztunnel's response flags; `-` is success. */
export type ResponseFlag = '-' | 'CERT_REVOKED' | 'CONNECT' | 'DENY' | 'H2_HANDSHAKE_FAILURE' | 'IDENTITY_ERROR' | 'TLS_FAILURE'

/** The labels we can fill; every other Istio label is written as `unknown`. */
export interface TrafficLabels {
  connectionSecurityPolicy?: 'mutual_tls' | 'unknown'
  destinationPrincipal?: string
  /** `tcp/NAME` */
  destinationService?: string
  /** the hosting agent */
  destinationWorkload?: string
  reporter: Reporter
  responseFlags?: ResponseFlag
  sourcePrincipal?: string
  /** the source identity name */
  sourceWorkload?: string
}

const LABEL_NAMES = [
  'reporter', 'source_workload', 'source_canonical_service', 'source_canonical_revision', 'source_workload_namespace',
  'source_principal', 'source_app', 'source_version', 'source_cluster', 'destination_service',
  'destination_service_namespace', 'destination_service_name', 'destination_workload', 'destination_canonical_service',
  'destination_canonical_revision', 'destination_workload_namespace', 'destination_principal', 'destination_app',
  'destination_version', 'destination_cluster', 'request_protocol', 'response_flags', 'connection_security_policy',
] as const

const COUNTERS = {
  closed: ['istio_tcp_connections_closed_total', 'Total number of TCP connections closed.'],
  failed: ['istio_tcp_connections_failed_total', 'Total number of TCP connections that failed (response_flags other than "-").'],
  opened: ['istio_tcp_connections_opened_total', 'Total number of TCP connections opened.'],
  received: ['istio_tcp_received_bytes_total', 'Size of total bytes received during request (source to destination) of TCP connections.'],
  sent: ['istio_tcp_sent_bytes_total', 'Size of total bytes sent during response (destination to source) of TCP connections.'],
} as const
type CounterName = keyof typeof COUNTERS
const COUNTER_ORDER: CounterName[] = ['opened', 'closed', 'failed', 'received', 'sent']

interface Series {
  labelText: string
  values: Record<CounterName, number>
}

/** A Prometheus label value, escaped (also for the app metrics the agent appends). */
export function escapeLabel(value: string): string {
  return value.replaceAll('\\', String.raw`\\`).replaceAll('"', String.raw`\"`).replaceAll('\n', String.raw`\n`)
}

function labelValues(labels: TrafficLabels): string[] {
  const service = labels.destinationService
  const serviceName = service?.startsWith('tcp/') ? service.slice(4) : undefined
  const byName: Record<(typeof LABEL_NAMES)[number], string | undefined> = {
    connection_security_policy: labels.connectionSecurityPolicy ?? 'mutual_tls',
    destination_app: undefined,
    destination_canonical_revision: undefined,
    destination_canonical_service: serviceName,
    destination_cluster: undefined,
    destination_principal: labels.destinationPrincipal,
    destination_service: service,
    destination_service_name: serviceName,
    destination_service_namespace: undefined,
    destination_version: undefined,
    destination_workload: labels.destinationWorkload,
    destination_workload_namespace: undefined,
    reporter: labels.reporter,
    request_protocol: 'tcp',
    response_flags: labels.responseFlags ?? '-',
    source_app: undefined,
    source_canonical_revision: undefined,
    source_canonical_service: labels.sourceWorkload,
    source_cluster: undefined,
    source_principal: labels.sourcePrincipal,
    source_version: undefined,
    source_workload: labels.sourceWorkload,
    source_workload_namespace: undefined,
  }
  return LABEL_NAMES.map((name) => byName[name] || 'unknown')
}

const FILTER_LABELS: Record<keyof TrafficLabels, (typeof LABEL_NAMES)[number]> = {
  connectionSecurityPolicy: 'connection_security_policy',
  destinationPrincipal: 'destination_principal',
  destinationService: 'destination_service',
  destinationWorkload: 'destination_workload',
  reporter: 'reporter',
  responseFlags: 'response_flags',
  sourcePrincipal: 'source_principal',
  sourceWorkload: 'source_workload',
}

/** Every field of TrafficLabels (FILTER_LABELS is typed to list them all). */
const TRAFFIC_LABEL_FIELDS = Object.keys(FILTER_LABELS) as (keyof TrafficLabels)[]

/** One label set's counters; `connectionOpened` hands it back so the close can skip the lookup. */
export type SeriesHandle = Series

/** A trie level: one Map per TrafficLabels field, in TRAFFIC_LABEL_FIELDS order; the last level holds the series. */
type SeriesTrie = Map<string | undefined, SeriesTrie | Series>

export class Metrics {
  private readonly series: Series[] = []
  private readonly trie: SeriesTrie = new Map()

  constructor(private readonly build: {component: string; tag: string}) {}

  // Runs twice per connection: walking one Map per label field reuses each string's cached hash,
  // where building a joined key string would allocate and hash ~200 characters every time.
  private seriesFor(labels: TrafficLabels): Series {
    let level = this.trie
    const last = TRAFFIC_LABEL_FIELDS.length - 1
    for (let index = 0; index < last; index++) {
      const value = labels[TRAFFIC_LABEL_FIELDS[index]]
      let next = level.get(value) as SeriesTrie | undefined
      if (!next) {
        next = new Map()
        level.set(value, next)
      }

      level = next
    }

    const value = labels[TRAFFIC_LABEL_FIELDS[last]]
    let series = level.get(value) as Series | undefined
    if (!series) {
      const values = labelValues(labels)
      const labelText = LABEL_NAMES.map((name, index) => `${name}="${escapeLabel(values[index])}"`).join(',')
      series = {labelText, values: {closed: 0, failed: 0, opened: 0, received: 0, sent: 0}}
      level.set(value, series)
      this.series.push(series)
    }

    return series
  }

  connectionOpened(labels: TrafficLabels): SeriesHandle {
    const series = this.seriesFor(labels)
    series.values.opened++
    return series
  }

  /**
   * A connection ended: bytes in Istio's convention (received = source→destination). SERIES: the
   * handle `connectionOpened` returned, when the labels did not change since.
   */
  connectionClosed(labels: TrafficLabels, bytes: {received: number; sent: number}, series: SeriesHandle = this.seriesFor(labels)): void {
    series.values.closed++
    series.values.received += bytes.received
    series.values.sent += bytes.sent
    if ((labels.responseFlags ?? '-') !== '-') series.values.failed++
  }

  /** A connection refused before it was established (TLS failure, denied CONNECT, dial error). */
  connectionFailed(labels: TrafficLabels): void {
    const series = this.seriesFor(labels)
    series.values.failed++
  }

  /** A counter's value summed over every label set matching `filter` (for tests and status output). */
  total(counter: CounterName, filter: Partial<TrafficLabels> = {}): number {
    let sum = 0
    for (const series of this.series) {
      const matches = Object.entries(filter).every(([key, value]) =>
        series.labelText.includes(`${FILTER_LABELS[key as keyof TrafficLabels]}="${escapeLabel(String(value))}"`))
      if (matches) sum += series.values[counter]
    }

    return sum
  }

  /** The Prometheus text exposition format (version 0.0.4). */
  render(): string {
    const lines: string[] = [
      '# HELP istio_build Istio component build info',
      '# TYPE istio_build gauge',
      `istio_build{component="${escapeLabel(this.build.component)}",tag="${escapeLabel(this.build.tag)}"} 1`,
    ]
    for (const name of COUNTER_ORDER) {
      const [metric, help] = COUNTERS[name]
      lines.push(`# HELP ${metric} ${help}`, `# TYPE ${metric} counter`)
      for (const series of this.series) {
        if (name === 'failed' && series.values.failed === 0) continue
        lines.push(`${metric}{${series.labelText}} ${series.values[name]}`)
      }
    }

    return lines.join('\n') + '\n'
  }
}

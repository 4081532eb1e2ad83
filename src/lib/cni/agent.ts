// The CNI agent of a node (DaemonSet ztctl-cni). Today it watches the node's CNI directories and is Ready
// while the node has a primary CNI configuration to chain to; Kubernetes II gives it its real job (installing
// ztctl's plugin in the chain and setting up in-pod redirection).
import {once} from 'node:events'
import http from 'node:http'

import type {Logger} from '../log/logger.js'
import type {HostPort} from '../proxy/address.js'
import {type CniFindings, checkCniNode} from './node-check.js'

export interface CniAgentOptions {
  binDir: string
  confDir: string
  /** how often to look at the directories again */
  intervalMs?: number
  logger: Logger
  readiness: HostPort
}

export interface CniAgent {
  address: HostPort
  close(): Promise<void>
  findings(): CniFindings
}

export async function startCniAgent(options: CniAgentOptions): Promise<CniAgent> {
  let findings = await checkCniNode(options.confDir, options.binDir)
  let lastReport = ''
  const report = () => {
    const text = JSON.stringify(findings)
    if (text === lastReport) return
    lastReport = text
    if (findings.problems.length > 0) options.logger.warn({findings}, `node not ready for the CNI agent: ${findings.problems.join('; ')}`)
    else options.logger.info({findings}, `node ready: primary CNI configuration ${findings.configs[0]}`)
  }

  report()
  const timer = setInterval(async () => {
    findings = await checkCniNode(options.confDir, options.binDir)
    report()
  }, options.intervalMs ?? 5000)
  timer.unref()

  const server = http.createServer((request, response) => {
    const ready = findings.problems.length === 0
    const known = request.url === '/healthz/ready'
    response.writeHead(known ? (ready ? 200 : 503) : 404, {'content-type': 'application/json'})
    response.end(known ? JSON.stringify({ready, ...findings}) : '{"error":"not found"}')
  })
  server.listen(options.readiness.port, options.readiness.host)
  await once(server, 'listening')
  const bound = server.address() as {port: number}
  options.logger.info({readiness: `${options.readiness.host}:${bound.port}`}, 'CNI agent started')
  return {
    address: {host: options.readiness.host, port: bound.port},
    async close() {
      clearInterval(timer)
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
    findings: () => findings,
  }
}

// Root test: a netns "pod" runs `ztctl agent run --mode tproxy` (via `ip netns exec`), a second agent in
// the node's netns hosts tcp/web (an echo service). A client in the pod resolves web.mesh through the
// sidecar's DNS on 127.0.0.1:53 (resolv.conf rewritten for that netns only), connects with no proxy
// setting, and reaches the echo service through HBONE. On SIGTERM the rules and resolv.conf are restored.
import assert from 'node:assert/strict'
import type {ChildProcess} from 'node:child_process'
import {mkdir, readFile, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'

import {emptySnapshot} from '../../src/lib/config/types.js'
import {allocateInterceptAddresses} from '../../src/lib/sidecar/addresses.js'
import {RUN_JS} from '../helpers/controller.js'
import {createTopology, hasRoot} from '../helpers/netns.js'
import {requireTools} from '../helpers/tools.js'
import {createMesh, tempDir, waitFor} from '../proxy/helpers.js'

const TD = 'test.mesh'
const ECHO_PORT = 8080

function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode === null ? new Promise((resolve) => child.once('exit', (code) => resolve(code))) : Promise.resolve(child.exitCode)
}

async function readyFile(file: string): Promise<{addresses: {hbone: string; inbound: Record<string, string>}}> {
  return waitFor(`ready file ${file}`, async () => {
    const text = await readFile(file, 'utf8').catch(() => '')
    return text ? (JSON.parse(text) as {addresses: {hbone: string; inbound: Record<string, string>}}) : undefined
  }, 20_000)
}

test('tproxy sidecar: a pod resolves web.mesh via 127.0.0.1:53 and connects through HBONE; cleanup on exit', {timeout: 90_000}, async (t) => {
  hasRoot()
  requireTools('socat')
  const dir = await tempDir(t)
  const topo = await createTopology(t, {nodes: 1, podsPerNode: 1})
  const [node] = topo.nodes
  const [pod] = topo.pods
  const mesh = await createMesh(TD)
  const [podIdentity, hostIdentity] = await Promise.all([mesh.identity('pod'), mesh.identity('host')])
  for (const identity of [podIdentity, hostIdentity]) await writeFile(path.join(dir, `${identity.name}.json`), JSON.stringify(identity), {mode: 0o600})

  // The echo service lives in the node netns; the host agent serves it from there.
  topo.spawn(node.netns, 'socat', [`TCP-LISTEN:${ECHO_PORT},bind=127.0.0.1,fork,reuseaddr`, 'EXEC:cat'])
  const config = emptySnapshot()
  config.outbound['tcp/web@host'] = {agent: 'host', allow: ['@pod'], service: 'tcp/web', targets: [{host: '127.0.0.1', port: ECHO_PORT}]}
  config.inbound['tcp/web@pod'] = {agent: 'pod', intercept: ['web.mesh:80'], listen: '127.0.0.1:0', service: 'tcp/web'}
  for (const identity of [podIdentity, hostIdentity]) config.identity[identity.name] = {name: identity.name, roles: [], spiffe: identity.spiffe}
  await writeFile(path.join(dir, 'host.config.json'), JSON.stringify(config))
  const agentArgs = (name: string, hbone: string) => [RUN_JS, 'agent', 'run', '-i', path.join(dir, `${name}.json`), '--config', path.join(dir, `${name}.config.json`),
    '--hbone', hbone, '--admin', '127.0.0.1:0', '--metrics', '127.0.0.1:0', '--readiness', '127.0.0.1:0', '--ready-file', path.join(dir, `${name}.ready.json`)]
  topo.spawn(node.netns, process.execPath, agentArgs('host', `${node.bridgeIp}:0`))
  const hostReady = await readyFile(path.join(dir, 'host.ready.json'))

  config.agent.host = {hbone: hostReady.addresses.hbone, name: 'host', spiffe: hostIdentity.spiffe}
  await writeFile(path.join(dir, 'pod.config.json'), JSON.stringify(config))
  // `ip netns exec POD` bind-mounts this file over /etc/resolv.conf for every process it starts.
  const netnsEtc = `/etc/netns/${pod.netns}`
  await mkdir(netnsEtc, {recursive: true})
  t.after(() => rm(netnsEtc, {force: true, recursive: true}))
  const originalResolvConf = 'nameserver 192.0.2.53\n'
  await writeFile(`${netnsEtc}/resolv.conf`, originalResolvConf)
  const sidecar = topo.spawn(pod.netns, process.execPath, [...agentArgs('pod', '127.0.0.1:0'), '--mode', 'tproxy', '--dns-resolv-conf', `${netnsEtc}/resolv.conf`])
  let sidecarLog = ''
  sidecar.stdout?.on('data', (chunk: Buffer) => (sidecarLog = (sidecarLog + chunk.toString()).slice(-20_000)))
  await readyFile(path.join(dir, 'pod.ready.json')).catch((error: Error) => assert.fail(`${error.message}\n${sidecarLog}`))

  const expected = allocateInterceptAddresses(['web.mesh']).get('web.mesh')!
  const resolved = await topo.execOk(pod.netns, 'getent', ['ahostsv4', 'web.mesh'])
  assert.match(resolved, new RegExp(`^${expected.replaceAll('.', '\\.')}\\s`), resolved)
  const rules = await topo.execOk(pod.netns, 'iptables', ['-t', 'nat', '-S'])
  assert.match(rules, new RegExp(`-A ZTCTL_SIDECAR -d ${expected}/32 -p tcp -m tcp --dport 80 .*-j REDIRECT`))
  assert.match(rules, /-A OUTPUT -p tcp -j ZTCTL_SIDECAR/)

  // The application knows nothing of the mesh: a plain TCP connection to web.mesh:80.
  const echoed = await topo.execOk(pod.netns, 'socat', ['-t', '3', '-T', '5', '-', 'TCP:web.mesh:80'], {input: 'hello through the tproxy sidecar\n'})
  assert.equal(echoed, 'hello through the tproxy sidecar\n')

  sidecar.kill('SIGTERM')
  assert.equal(await exited(sidecar), 0, sidecarLog.slice(-3000))
  // The sidecar's access log shows the connection went to the hosting agent as tcp/web (HBONE).
  assert.match(sidecarLog, /"dst\.service":"tcp\/web","dst\.workload":"host"/)
  const after = await topo.execOk(pod.netns, 'iptables', ['-t', 'nat', '-S'])
  assert.doesNotMatch(after, /ZTCTL_SIDECAR/)
  assert.equal(await readFile(`${netnsEtc}/resolv.conf`, 'utf8'), originalResolvConf)
  const routes = await topo.execOk(pod.netns, 'ip', ['route', 'show', 'table', 'local'])
  assert.doesNotMatch(routes, /100\.64\.0\.0\/10/)
})

// The ztctl CNI plugin executable (build/Release/ztctl-cni, built by `npm run build`) as the container runtime
// runs it — stdin, CNI_* environment, stdout, exit code — against the CNI agent's real plugin socket.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {after, before, describe, test} from 'node:test'

import {PLUGIN_SOURCE} from '../../src/lib/cni/agent.js'
import type {CniPluginRequest} from '../../src/lib/cni/plugin-protocol.js'
import {servePluginSocket, type PluginServer} from '../../src/lib/cni/plugin-server.js'

interface Run {
  code: number
  stdout: string
}

function runPlugin(command: string, stdin: string | Buffer, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(PLUGIN_SOURCE, [], {env: {CNI_COMMAND: command, ...env}, maxBuffer: 4 << 20, timeout: 40_000}, (error, stdout) => {
      resolve({code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout})
    })
    child.stdin!.on('error', () => {}) // the plugin may exit before reading everything (VERSION)
    child.stdin!.end(stdin)
  })
}

const prevResult = {cniVersion: '1.0.0', interfaces: [{name: 'eth0', sandbox: '/var/run/netns/x'}], ips: [{address: '10.77.1.12/24', interface: 0}]}
const config = (socket: string, extra: Record<string, unknown> = {}) => JSON.stringify({cniVersion: '1.0.0', name: 'ztk8s', prevResult, socket, type: 'ztctl-cni', ...extra})
const podEnv = {
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=1234',
  CNI_CONTAINERID: 'abc', CNI_IFNAME: 'eth0', CNI_NETNS: '/var/run/netns/cni-1', CNI_PATH: '/opt/cni/bin',
}

describe('ztctl-cni plugin', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ztctl-cni-'))
  })
  after(async () => {
    await rm(dir, {force: true, recursive: true})
  })

  test('VERSION answers the versions it speaks without reading anything', async () => {
    const run = await runPlugin('VERSION', '')
    assert.equal(run.code, 0)
    assert.deepEqual(JSON.parse(run.stdout), {cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0']})
  })

  test('garbage, a missing prevResult, an unknown version or command: one CNI error object and exit 1', async () => {
    const cases: [string, string | Buffer, number, RegExp][] = [
      ['ADD', 'not json at all', 6, /not a JSON object/],
      ['ADD', '{"cniVersion":"1.0.0", "a": [1, 2', 6, /not a JSON object/],
      ['ADD', '{"cniVersion":"1.0.0"} trailing', 6, /data after/],
      ['ADD', `{"cniVersion":"1.0.0","x":${'['.repeat(100_000)}`, 6, /not a JSON object/],
      ['ADD', Buffer.alloc(2 << 20, 0x20), 6, /larger than 1 MiB/],
      ['ADD', '{"name":"x"}', 7, /cniVersion/],
      ['ADD', '{"cniVersion":"9.9.9","prevResult":{}}', 1, /speaks CNI/],
      ['ADD', '{"cniVersion":"1.0.0","name":"x"}', 7, /chained plugin/],
      ['FROB', '{}', 4, /CNI_COMMAND/],
    ]
    for (const [command, stdin, code, message] of cases) {
      const run = await runPlugin(command, stdin, podEnv)
      assert.equal(run.code, 1, `${command} ${String(stdin).slice(0, 40)}: exit 1`)
      const error = JSON.parse(run.stdout) as {code: number; msg: string}
      assert.equal(error.code, code, `${String(stdin).slice(0, 40)}: ${run.stdout}`)
      assert.match(error.msg, message)
    }
  })

  test('no agent on the socket: ADD passes prevResult through verbatim, DEL and CHECK succeed', async () => {
    const socket = path.join(dir, 'nobody.sock')
    const add = await runPlugin('ADD', config(socket), podEnv)
    assert.equal(add.code, 0)
    assert.equal(add.stdout, `${JSON.stringify(prevResult)}\n`)
    for (const command of ['DEL', 'CHECK']) assert.deepEqual(await runPlugin(command, config(socket), podEnv), {code: 0, stdout: ''})
  })

  describe('with the CNI agent\'s plugin socket', () => {
    let server: PluginServer
    const seen: CniPluginRequest[] = []
    let verdict: {code: number; message: string} | undefined
    const socket = (): string => path.join(dir, 'cni.sock')
    before(async () => {
      server = await servePluginSocket(socket(), async (request) => {
        seen.push(request)
        return verdict
      }, () => {})
    })
    after(async () => {
      await server.close()
    })

    test('ADD forwards the pod, its netns and addresses; the agent\'s ok passes prevResult through', async () => {
      verdict = undefined
      const run = await runPlugin('ADD', config(socket()), podEnv)
      assert.deepEqual(run, {code: 0, stdout: `${JSON.stringify(prevResult)}\n`})
      assert.deepEqual(seen.at(-1), {
        cniVersion: '1.0.0', command: 'ADD', containerId: 'abc', ifname: 'eth0', ips: ['10.77.1.12'], netns: '/var/run/netns/cni-1',
        pod: {name: 'web-1', namespace: 'shop', uid: '1234'},
      })
    })

    test('the agent\'s refusal becomes a CNI error with its code and words; DEL without a netns is fine', async () => {
      verdict = {code: 11, message: 'the node agent is not ready:\nno socket'}
      const run = await runPlugin('ADD', config(socket()), podEnv)
      assert.equal(run.code, 1)
      assert.deepEqual(JSON.parse(run.stdout), {cniVersion: '1.0.0', code: 11, msg: 'the node agent is not ready: no socket'})
      verdict = undefined
      const del = await runPlugin('DEL', config(socket(), {prevResult: undefined}), {...podEnv, CNI_NETNS: ''})
      assert.deepEqual(del, {code: 0, stdout: ''})
      assert.equal(seen.at(-1)?.command, 'DEL')
      assert.equal(seen.at(-1)?.netns, '')
    })

    test('a sandbox that is no Kubernetes pod is forwarded without a pod', async () => {
      await runPlugin('ADD', config(socket()), {...podEnv, CNI_ARGS: 'IgnoreUnknown=1'})
      assert.equal(seen.at(-1)?.pod, undefined)
    })
  })

  test('an agent that answers garbage or hangs up: ADD fails with "try again later", DEL still succeeds', async () => {
    const socket = path.join(dir, 'rude.sock')
    const rude = net.createServer({allowHalfOpen: true}, (connection) => {
      connection.on('error', () => {})
      connection.resume()
      connection.on('end', () => connection.end('{"what": "ever"}\n'))
    })
    await new Promise<void>((resolve) => rude.listen(socket, resolve))
    try {
      const add = await runPlugin('ADD', config(socket), podEnv)
      assert.equal(add.code, 1)
      assert.equal((JSON.parse(add.stdout) as {code: number}).code, 11)
      assert.deepEqual(await runPlugin('DEL', config(socket), podEnv), {code: 0, stdout: ''})
    } finally {
      rude.close()
    }
  })

  test('the plugin socket refuses what is not a plugin request, and answers the next one', async () => {
    const socket = path.join(dir, 'strict.sock')
    const server = await servePluginSocket(socket, async () => undefined, () => {})
    const ask = (bytes: string): Promise<string> => new Promise((resolve, reject) => {
      const client = net.connect(socket, () => client.end(bytes))
      let reply = ''
      client.on('data', (chunk) => (reply += chunk))
      client.on('close', () => resolve(reply))
      client.on('error', reject)
    })
    try {
      assert.match(await ask('garbage'), /^error 6 the request is not JSON\n$/)
      assert.match(await ask('{"version":2}'), /^error 6 the plugin speaks protocol version 2/)
      assert.match(await ask('{"version":1,"command":"ADD","config":{},"containerId":"a","netns":"relative"}'), /^error 4 CNI_NETNS must be an absolute path/)
      assert.equal(await ask(JSON.stringify({args: '', command: 'DEL', config: {cniVersion: '1.0.0'}, containerId: 'a', netns: '', version: 1})), 'ok\n')
    } finally {
      await server.close()
    }
  })
})

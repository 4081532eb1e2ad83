// fixture.js - the static mesh the benchmark tunnel runs in: a CA, one identity file per agent and
// one ConfigSnapshot both agents load with `--config` (no controller in the loop).
//
//   node bench/fixture.js --dir DIR --client-hbone H:P --server-hbone H:P \
//     --route 127.0.0.1:7901=tcp/echo=127.0.0.1:7000 --route 127.0.0.1:7911=tcp/iperf=127.0.0.1:5201
//
// `bench-client` listens on each route's first address (inbound tunnels) and carries connections over
// HBONE to `bench-server`, which hosts each service (outbound tunnels) and dials its target.
// Two more snapshots for the paths of issue 15, with the same identities and a hub identity `bench-hub`:
//   --hub-route LISTEN=SERVICE=TARGET (repeatable) -> snapshot-hub.json: bench-server has no HBONE
//     address (it runs with --no-listen), so the client reaches it through the hub;
//   --socks-listen H:P --socks-target CIDR -> snapshot-socks.json: bench-client's proxy listener, and
//     bench-server an exit for CIDR (over direct HBONE).
// Uses the built library (dist/), so run `npm run build` first; prints nothing on success.
import {mkdir, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {parseArgs} from 'node:util'

import {emptySnapshot, resourceKey} from '../dist/lib/config/types.js'
import {writeIdentityFile} from '../dist/lib/identity/file.js'
import {createCA, createKeyAndCsr, createSigner} from '../dist/lib/pki/pki.js'

const TRUST_DOMAIN = 'bench.local'
const CLIENT = 'bench-client'
const SERVER = 'bench-server'
const HUB = 'bench-hub'
const CERT_TTL_SECONDS = 7 * 86_400
// The agents run from the static snapshot and never call the controller; the identity file format
// still requires an address, so it names one nothing listens on.
const NO_CONTROLLER = 'https://127.0.0.1:9'

const {values} = parseArgs({
  options: {
    'client-hbone': {type: 'string'},
    dir: {type: 'string'},
    'hub-route': {multiple: true, type: 'string'},
    route: {multiple: true, type: 'string'},
    'server-hbone': {type: 'string'},
    'socks-listen': {type: 'string'},
    'socks-target': {type: 'string'},
  },
})
for (const required of ['dir', 'client-hbone', 'server-hbone', 'route']) {
  if (!values[required]) throw new Error(`fixture.js: --${required} is required`)
}

const spiffeOf = (name) => `spiffe://${TRUST_DOMAIN}/identity/${name}`
const splitHostPort = (text) => {
  const colon = text.lastIndexOf(':')
  return {host: text.slice(0, colon), port: Number(text.slice(colon + 1))}
}

async function issueIdentity(signer, name) {
  const {csrPem, keyPem} = await createKeyAndCsr(name)
  const issued = await signer.signCsr(csrPem, {
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    spiffe: spiffeOf(name),
    ttlSeconds: CERT_TTL_SECONDS,
  })
  const file = path.join(values.dir, `${name}.json`)
  await writeIdentityFile(file, {
    ca: signer.ca.certPem,
    cert: issued.certPem,
    controller: NO_CONTROLLER,
    key: keyPem,
    name,
    spiffe: spiffeOf(name),
    version: 1,
  })
}

/** A snapshot with ROUTES (inbound on the client, outbound on the server); SERVER_HBONE '' = through the hub. */
function buildSnapshot(routes, serverHbone, extra = () => {}) {
  const snapshot = emptySnapshot()
  const put = (kind, value) => {
    snapshot[kind][resourceKey(kind, value)] = value
  }

  for (const [name, hbone] of [[CLIENT, values['client-hbone']], [SERVER, serverHbone]]) {
    put('agent', {hbone, name, spiffe: spiffeOf(name)})
    put('identity', {name, roles: ['bench'], spiffe: spiffeOf(name)})
  }

  put('identity', {name: HUB, roles: ['hub'], spiffe: spiffeOf(HUB)})
  for (const route of routes) {
    const [listen, service, target] = route.split('=')
    if (!listen || !service || !target) throw new Error(`fixture.js: bad --route ${route} (LISTEN=SERVICE=TARGET)`)
    put('inbound', {agent: CLIENT, listen, service})
    put('outbound', {agent: SERVER, allow: [`@${CLIENT}`], service, targets: [splitHostPort(target)]})
  }

  extra(put)
  return snapshot
}

const json = (value) => JSON.stringify(value, null, 2) + '\n'

await mkdir(values.dir, {mode: 0o700, recursive: true})
const signer = await createSigner(await createCA(TRUST_DOMAIN))
for (const name of [CLIENT, SERVER, HUB]) await issueIdentity(signer, name)
await writeFile(path.join(values.dir, 'snapshot.json'), json(buildSnapshot(values.route, values['server-hbone'])))
if (values['hub-route']) await writeFile(path.join(values.dir, 'snapshot-hub.json'), json(buildSnapshot(values['hub-route'], '')))
if (values['socks-listen']) {
  const snapshot = buildSnapshot([], values['server-hbone'], (put) => {
    put('proxy', {agent: CLIENT, listen: values['socks-listen'], users: []})
    put('exit', {agent: SERVER, allow: [`@${CLIENT}`], exclusions: [], targets: [values['socks-target'] ?? '127.0.0.1/32']})
  })
  await writeFile(path.join(values.dir, 'snapshot-socks.json'), json(snapshot))
}

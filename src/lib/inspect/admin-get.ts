// GET from a local side door (an agent's or a hub's admin listener): `HOST:PORT`, or `unix:PATH` for a
// process with no TCP port (`agent run --no-listen`). Bounded: 5 s, 16 MiB.
import {request} from 'node:http'

const TIMEOUT_MS = 5000
const MAX_BODY_BYTES = 16 * 1024 * 1024

export function adminUrl(admin: string, path: string): string {
  return admin.startsWith('unix:') ? `${admin}:${path}` : `http://${admin}${path}`
}

export function adminGet(admin: string, path: string): Promise<{body: string; status: number}> {
  const target = admin.startsWith('unix:') ? {path, socketPath: admin.slice(5)} : {host: hostOf(admin), path, port: Number(admin.slice(admin.lastIndexOf(':') + 1))}
  return new Promise((resolve, reject) => {
    const outgoing = request({...target, method: 'GET', timeout: TIMEOUT_MS}, (response) => {
      const chunks: Buffer[] = []
      let size = 0
      response.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > MAX_BODY_BYTES) outgoing.destroy(new Error(`the answer is larger than ${MAX_BODY_BYTES} bytes`))
        else chunks.push(chunk)
      })
      response.on('end', () => resolve({body: Buffer.concat(chunks).toString('utf8'), status: response.statusCode ?? 0}))
      response.on('error', reject)
    })
    outgoing.on('timeout', () => outgoing.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)))
    outgoing.on('error', reject)
    outgoing.end()
  })
}

function hostOf(admin: string): string {
  const host = admin.slice(0, admin.lastIndexOf(':'))
  return host.startsWith('[') ? host.slice(1, -1) : host
}

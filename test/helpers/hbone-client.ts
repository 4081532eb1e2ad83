// A plain HBONE client for tests: one CONNECT over node:http2 with the certificate given (the peer is
// node:http2, not our pool; the agent's host name is not checked, as HBONE pins SPIFFE IDs instead).
import http2, {type ClientHttp2Session, type ClientHttp2Stream} from 'node:http2'

export interface HboneAttempt {
  session: ClientHttp2Session
  /** the CONNECT's :status; 0 when the stream or the session ended first */
  status: number
  stream: ClientHttp2Stream
}

export async function hboneConnect(address: string, tls: {ca: string; cert: string; key: string}, target: string): Promise<HboneAttempt> {
  const session = http2.connect(`https://${address}`, {...tls, checkServerIdentity: () => undefined, minVersion: 'TLSv1.3'})
  session.on('error', () => {})
  const stream = session.request({':authority': target, ':method': 'CONNECT'})
  stream.on('error', () => {})
  const status = await new Promise<number>((resolve) => {
    stream.once('response', (headers) => resolve(Number(headers[':status'])))
    stream.once('close', () => resolve(0))
  })
  return {session, status, stream}
}

// The config stream endpoint: NDJSON both ways, served by the ConfigHub.
import type {Route} from './types.js'

export const configRoutes: Route[] = [
  {
    access: 'identity',
    async handle({principal, request, response, services}) {
      response.writeHead(200, {'cache-control': 'no-store', 'content-type': 'application/x-ndjson'})
      // Headers now, so the agent knows it is subscribed before the first message arrives.
      ;(response as unknown as {flushHeaders?: () => void}).flushHeaders?.()
      services.hub.attach(request, response, principal!)
      return undefined
    },
    method: 'POST',
    path: '/v1/config/stream',
    streaming: true,
  },
]

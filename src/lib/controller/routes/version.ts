import type {Route} from './types.js'

export const versionRoutes: Route[] = [
  {
    access: 'anonymous',
    async handle({services}) {
      return {caFingerprint: services.ca.fingerprint, trustDomain: services.trustDomain, version: services.version}
    },
    method: 'GET',
    path: '/v1/version',
  },
]

// Node-agent enrollment with a Kubernetes ServiceAccount token (`agent run --kubernetes`): the token is
// the credential, for the first certificate and for every renewal. See node-enroll.ts.
import {ExitCode, ZtError} from '../../errors.js'
import {enrollNodeAgent} from '../node-enroll.js'
import type {Route} from './types.js'
import {asObject, badRequest, requireString} from './validate.js'

export const kubeRoutes: Route[] = [
  {
    access: 'anonymous',
    async handle({body, services}) {
      if (!services.nodeAgents) {
        throw new ZtError('ZT_ERR_NOT_FOUND', 'this controller does not run in Kubernetes, so it cannot enroll with ServiceAccount tokens', {
          exit: ExitCode.notFound, suggestion: 'run the controller with `--store kubernetes`, or enroll with a token file (`ztctl enroll NAME.jwt`)',
        })
      }

      const input = asObject(body)
      const token = requireString(input, 'token', 16 * 1024)
      const csr = requireString(input, 'csr')
      if (input.node !== undefined && (typeof input.node !== 'string' || input.node === '' || input.node.length > 253)) throw badRequest('"node" must be a node name')
      const review = await services.nodeAgents.review(token, input.node as string | undefined)
      const {identity, issued} = await enrollNodeAgent(services, review, csr)
      services.logger.info({identity: identity.name, node: review.node, pod: `${review.namespace}/${review.pod}`, serial: issued.record.serial}, 'node agent enrolled')
      return {
        ca: services.ca.bundle, cert: issued.cert, controller: services.url, name: identity.name, spiffe: identity.spiffe,
      }
    },
    method: 'POST',
    path: '/v1/kube/enroll',
  },
]

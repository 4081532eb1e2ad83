// The demo profile's sample apps, in their own namespace (the only objects install puts outside the install
// namespace): `web`, a tiny HTTP server behind a Service, and `client`, a pod to run requests from.
import {type InstallValues, installLabels, type KubeObject, type Rendered} from './objects.js'

export function renderDemo(values: InstallValues): Rendered[] {
  if (!values.demo.enabled) return []
  const ns = values.demo.namespace
  const labels = installLabels('demo')
  const demo = (object: KubeObject): Rendered => ({component: 'demo', object})
  return [
    demo({apiVersion: 'v1', kind: 'Namespace', metadata: {labels, name: ns}}),
    demo({
      apiVersion: 'v1', kind: 'Service', metadata: {labels, name: 'web', namespace: ns},
      spec: {ports: [{name: 'http', port: 80, protocol: 'TCP', targetPort: 'http'}], selector: {app: 'web'}},
    }),
    demo(app(values, 'web', ['sh', '-c', 'echo "hello from web ($HOSTNAME)" > /www/index.html && exec httpd -f -p 8080 -h /www'], true)),
    demo(app(values, 'client', ['sleep', '2147483647'], false)),
  ]
}

function app(values: InstallValues, name: string, command: string[], serves: boolean): KubeObject {
  const container: Record<string, unknown> = {
    command,
    image: values.demo.image,
    imagePullPolicy: values.demo.pullPolicy,
    name,
    resources: {limits: {memory: '32Mi'}, requests: {cpu: '10m', memory: '16Mi'}},
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: ['ALL']}, readOnlyRootFilesystem: true},
    volumeMounts: [{mountPath: '/www', name: 'www'}],
  }
  if (serves) {
    container.ports = [{containerPort: 8080, name: 'http', protocol: 'TCP'}]
    container.readinessProbe = {periodSeconds: 2, tcpSocket: {port: 'http'}}
  }

  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {labels: installLabels('demo'), name, namespace: values.demo.namespace},
    spec: {
      replicas: 1,
      selector: {matchLabels: {app: name}},
      template: {
        metadata: {labels: {app: name}},
        spec: {
          containers: [container],
          securityContext: {runAsNonRoot: true, runAsUser: 65_532},
          terminationGracePeriodSeconds: 2,
          volumes: [{emptyDir: {}, name: 'www'}],
        },
      },
    },
  }
}

import {Flags} from '@oclif/core'

import {BaseCommand} from '../lib/cli/base-command.js'

export default class Inject extends BaseCommand<typeof Inject> {
  static override description = `Print Kubernetes manifests with a ztctl agent added to every pod template (Deployments, StatefulSets, DaemonSets, Jobs, CronJobs, Pods), ready for \`kubectl apply -f -\`.

The agent runs as the identity in Secret ztctl-<NAME> (key identity.json, as \`ztctl enroll\` writes it; --identity-secret to name another).
  --mode proxy   unprivileged (uid 65532, no capabilities): each mesh service the identity may dial listens on 127.0.0.1:PORT (--proxy-port tcp/NAME=PORT)
  --mode tproxy  the agent captures the services' intercept addresses in the pod's network namespace and answers their names on 127.0.0.1:53 (root with NET_ADMIN, NET_RAW and NET_BIND_SERVICE; an init container checks the pod allows it)
Injected pods opt out of ambient redirection; a template with \`ztctl.io/inject: "false"\` or already injected is left as it is.`
  static override examples = [
    'ztctl identity create web --out web.jwt && ztctl enroll web.jwt --out web.json && kubectl create secret generic ztctl-web --from-file=identity.json=web.json',
    '<%= config.bin %> <%= command.id %> -f deploy.yaml | kubectl apply -f -',
    'kubectl get deploy web -o yaml | <%= config.bin %> <%= command.id %> -f - --mode tproxy | kubectl apply -f -',
  ]
  static override flags = {
    filename: Flags.string({char: 'f', description: 'the manifests (YAML or JSON, several separated by ---); - for standard input', required: true}),
    'identity-secret': Flags.string({description: 'the Secret with identity.json for every injected workload [default: ztctl-<workload name>]'}),
    image: Flags.string({description: 'the agent image [default: ztctl.local/ztctl:<this version>, what `npm run image` builds]'}),
    'image-pull-policy': Flags.string({default: 'IfNotPresent', options: ['Always', 'IfNotPresent', 'Never']}),
    mode: Flags.string({default: 'proxy', description: 'proxy = services on 127.0.0.1:PORT, no privileges; tproxy = transparent capture (NET_ADMIN)', options: ['proxy', 'tproxy']}),
    'proxy-port': Flags.string({description: 'with --mode proxy: tcp/NAME=PORT (repeatable): the local port of a service', multiple: true}),
  }
  static override summary = 'Add a ztctl sidecar to Kubernetes manifests'

  async run(): Promise<unknown> {
    const {injectManifests, readManifestInput} = await import('../lib/kube/inject.js')
    const file = this.flags.filename
    const result = injectManifests(await readManifestInput(file), file === '-' ? 'standard input' : file, {
      identitySecret: this.flags['identity-secret'], image: this.flags.image ?? `ztctl.local/ztctl:${this.config.version}`,
      imagePullPolicy: this.flags['image-pull-policy'], mode: this.flags.mode as 'proxy' | 'tproxy', proxyPorts: this.flags['proxy-port'],
    })
    for (const label of result.injected) this.logToStderr(`injected ${label} (${this.flags.mode})`)
    for (const label of result.skipped) this.logToStderr(`left ${label}`)
    if (this.format === 'json') return this.render(result, () => undefined)
    this.log(result.yaml.trimEnd())
    return result
  }
}

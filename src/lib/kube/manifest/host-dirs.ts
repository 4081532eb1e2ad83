// The host directories the CNI agent and the node agent share, mounted at the same path as on the host in
// both (paths travel between them and the plugin: sockets, pod records, pods' netns files).
import type {InstallValues} from './objects.js'

export function sharedHostMounts(values: InstallValues): {mounts: Record<string, unknown>[]; volumes: Record<string, unknown>[]} {
  return {
    mounts: [
      {mountPath: values.cni.runDir, name: 'ztctl-run'},
      // the runtime mounts each pod's netns here after we start: HostToContainer makes those visible
      {mountPath: values.cni.netnsDir, mountPropagation: 'HostToContainer', name: 'netns', readOnly: true},
    ],
    volumes: [
      {hostPath: {path: values.cni.runDir, type: 'DirectoryOrCreate'}, name: 'ztctl-run'},
      {hostPath: {path: values.cni.netnsDir, type: 'DirectoryOrCreate'}, name: 'netns'},
    ],
  }
}

// The host directories the CNI agent and the node agent share, mounted at the same path as on the host in
// both (paths travel between them and the plugin: sockets, pod records, pods' netns files).
// A directory value may hold `$(NODE_NAME)` as a whole path component (cni.runDir=/nodes/$(NODE_NAME)/run), for
// nodes that share one filesystem (a test machine's): the kubelet expands it in the agents' args from the pod's
// NODE_NAME. The run and netns dirs then mount the directory above it, at the same path (their paths travel);
// the conf and bin dirs, mounted elsewhere anyway, mount only the node's own subdirectory (subPathExpr).
// (A subPath mount of the netns dir would be the kubelet's own bind mount, which the pods' netns mounts
// propagate into: a deleted agent pod was then not replaced (the kubelet, most likely, cannot unmount it).)
import type {InstallValues} from './objects.js'

const NODE_NAME_VAR = '$(NODE_NAME)'

/** `/root/$(NODE_NAME)/rest` → {hostPath: /root, subPath: $(NODE_NAME)/rest}; any other value is its own hostPath. */
export function hostDir(value: string): {hostPath: string; subPath?: string} {
  const at = value.indexOf(`/${NODE_NAME_VAR}`)
  if (at < 0) return {hostPath: value}
  return {hostPath: value.slice(0, at) || '/', subPath: value.slice(at + 1)}
}

/** A value with `$(NODE_NAME)` replaced by NODE (for pods created for one known node). */
export const forNode = (value: string, node: string): string => value.replaceAll(NODE_NAME_VAR, node)

/** A hostPath volume mounted at MOUNTPATH: for a per-node value only the node's own subdirectory (subPathExpr). */
export function nodeSubdirVolume(name: string, value: string, mountPath: string): {mount: Record<string, unknown>; volume: Record<string, unknown>} {
  const {hostPath, subPath} = hostDir(value)
  return {
    mount: {mountPath, name, ...(subPath ? {subPathExpr: subPath} : {})},
    volume: {hostPath: {path: hostPath, type: 'Directory'}, name},
  }
}

export function sharedHostMounts(values: InstallValues): {mounts: Record<string, unknown>[]; volumes: Record<string, unknown>[]} {
  const run = hostDir(values.cni.runDir).hostPath
  const netns = hostDir(values.cni.netnsDir).hostPath
  return {
    mounts: [
      {mountPath: run, name: 'ztctl-run'},
      // the runtime mounts each pod's netns here after we start: HostToContainer makes those visible
      {mountPath: netns, mountPropagation: 'HostToContainer', name: 'netns', readOnly: true},
    ],
    volumes: [
      {hostPath: {path: run, type: 'DirectoryOrCreate'}, name: 'ztctl-run'},
      {hostPath: {path: netns, type: 'DirectoryOrCreate'}, name: 'netns'},
    ],
  }
}

// What the CNI agent needs on its node: the CNI configuration directory with the node's primary network
// configuration in it, and the plugin directory. Read through the DaemonSet's hostPath mounts.
import {readdir, stat} from 'node:fs/promises'

export interface CniFindings {
  binDir: string
  confDir: string
  /** the configuration files, in the order the container runtime reads them (the first one is used) */
  configs: string[]
  plugins: number
  /** what is missing, in words; empty when the node is ready for the CNI agent */
  problems: string[]
}

const CONFIG_FILE = /\.(conf|conflist|json)$/

export async function checkCniNode(confDir: string, binDir: string): Promise<CniFindings> {
  const problems: string[] = []
  const configs = await listDir(confDir, problems, 'CNI configuration directory')
  const plugins = await listDir(binDir, problems, 'CNI plugin directory')
  const networkConfigs = configs.filter((name) => CONFIG_FILE.test(name)).sort()
  if (configs.length > 0 && networkConfigs.length === 0) {
    problems.push(`${confDir} holds no network configuration (*.conf, *.conflist): the node has no primary CNI to chain to`)
  }

  return {binDir, confDir, configs: networkConfigs, plugins: plugins.length, problems}
}

async function listDir(dir: string, problems: string[], what: string): Promise<string[]> {
  try {
    if (!(await stat(dir)).isDirectory()) {
      problems.push(`${what} ${dir} is not a directory`)
      return []
    }

    return await readdir(dir)
  } catch (error) {
    problems.push(`${what} ${dir} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
    return []
  }
}

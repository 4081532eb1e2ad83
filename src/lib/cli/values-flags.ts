// The flags that choose an installation's values, shared by manifest generate, install and verify-install:
// --profile, -f/--filename (repeatable, merged in order), -s/--set (repeatable, after the files).
import {Flags} from '@oclif/core'

import type {ResolvedValues} from '../kube/manifest/profiles.js'

export const valuesFlags = {
  filename: Flags.string({char: 'f', description: 'values YAML file (repeatable; merged in order, before --set)', multiple: true}),
  profile: Flags.string({char: 'p', description: 'installation profile: ambient, minimal or demo (`ztctl profile list`)'}),
  set: Flags.string({
    char: 's',
    description: 'set a value: a.b=c, a.list={x,y}, a.list[0]=x, a.map.key\\.with\\.dots=v (repeatable; `ztctl profile dump` lists them)',
    multiple: true,
  }),
}

export async function valuesFromFlags(
  flags: {filename?: string[]; namespace?: string; profile?: string; set?: string[]},
  version: string,
  fallbackProfile?: string,
): Promise<ResolvedValues> {
  const {resolveValues} = await import('../kube/manifest/profiles.js')
  return resolveValues({files: flags.filename, namespace: flags.namespace, profile: flags.profile ?? fallbackProfile, set: flags.set, version})
}

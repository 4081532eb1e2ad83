// Installation profiles: named sets of values over the schema's defaults (as istioctl's profiles are
// IstioOperator overlays). A profile is data; `--set` and `-f` go on top of it.
import {closest} from '../../closest.js'
import {ExitCode, ZtError} from '../../errors.js'
import {checkValues, defaultValues, mergeValues, parseSetValues, readValuesFiles, type Values} from './values.js'

export interface Profile {
  description: string
  name: string
  values: Values
}

export const PROFILES: readonly Profile[] = [
  {
    description: 'controller, node agents on every node, CNI agents, custom resources and RBAC (production)',
    name: 'ambient',
    values: {cni: {enabled: true}, nodeAgent: {enabled: true}},
  },
  {
    description: 'ambient plus two sample apps (web and client) in the ztctl-demo namespace, for trying ztctl out',
    name: 'demo',
    values: {cni: {enabled: true}, demo: {enabled: true}, logLevel: 'debug', nodeAgent: {enabled: true}},
  },
  {
    description: 'the controller only, with its custom resources and RBAC (agents enrolled by hand)',
    name: 'minimal',
    values: {cni: {enabled: false}, nodeAgent: {enabled: false}},
  },
]

export const DEFAULT_PROFILE = 'ambient'

export function findProfile(name: string): Profile {
  const profile = PROFILES.find((candidate) => candidate.name === name)
  if (profile) return profile
  const near = closest(name, PROFILES.map((candidate) => candidate.name))
  throw new ZtError('ZT_ERR_UNKNOWN_PROFILE', `no profile "${name}"`, {
    exit: ExitCode.notFound,
    suggestion: `${near ? `did you mean ${near}? ` : ''}profiles: ${PROFILES.map((candidate) => candidate.name).join(', ')} (\`ztctl profile list\`)`,
  })
}

export interface ValuesInput {
  /** -f files, merged in order */
  files?: readonly string[]
  /** -n: the install namespace, applied last */
  namespace?: string
  profile?: string
  /** --set expressions, applied after the files, in order */
  set?: readonly string[]
  version: string
}

export interface ResolvedValues {
  profile: string
  values: Values
}

/** defaults → profile → -f files → --set → -n, each checked against the schema. */
export async function resolveValues(input: ValuesInput): Promise<ResolvedValues> {
  const profile = findProfile(input.profile ?? DEFAULT_PROFILE)
  let values = mergeValues(defaultValues(input.version), checkValues(profile.values, `profile ${profile.name}`))
  for (const file of await readValuesFiles(input.files ?? [])) values = mergeValues(values, file)
  values = mergeValues(values, parseSetValues(input.set ?? []))
  if (input.namespace) values = mergeValues(values, parseSetValues([`namespace=${input.namespace}`]))
  return {profile: profile.name, values}
}

/** The full values of a profile (defaults included), as `profile dump` prints them. */
export function profileValues(name: string, version: string): Values {
  const profile = findProfile(name)
  return mergeValues(defaultValues(version), checkValues(profile.values, `profile ${profile.name}`))
}

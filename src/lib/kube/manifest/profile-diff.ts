// `profile diff A B`: the values that differ, as a list and as a unified diff of the two dumps.
import {profileValues} from './profiles.js'
import type {Values} from './values.js'

export interface ProfileDiff {
  a: string
  b: string
  changes: {a: unknown; b: unknown; key: string}[]
  patch: string
}

export async function diffProfiles(a: string, b: string, version: string): Promise<ProfileDiff> {
  const left = profileValues(a, version)
  const right = profileValues(b, version)
  const {stringify} = await import('yaml')
  const {createTwoFilesPatch} = await import('diff')
  const patch = createTwoFilesPatch(`profile ${a}`, `profile ${b}`, stringify(left), stringify(right), '', '', {context: 2})
  return {a, b, changes: changedKeys(left, right), patch}
}

function changedKeys(left: Values, right: Values, prefix = ''): ProfileDiff['changes'] {
  const keys = [...new Set([...Object.keys(left), ...Object.keys(right)])].sort()
  return keys.flatMap((key) => {
    const [x, y] = [left[key], right[key]]
    const isMap = (value: unknown) => typeof value === 'object' && value !== null && !Array.isArray(value)
    if (isMap(x) && isMap(y)) return changedKeys(x as Values, y as Values, `${prefix}${key}.`)
    return JSON.stringify(x) === JSON.stringify(y) ? [] : [{a: x, b: y, key: prefix + key}]
  })
}

// The diff `install --dry-run` shows: the live object against what the server's dry run says it would become.
import {type Change, comparable} from './apply.js'

export async function changeDiff(change: Change): Promise<string> {
  const {stringify} = await import('yaml')
  const {createTwoFilesPatch} = await import('diff')
  const text = (object: Change['after']) => (object ? stringify(comparable(object), {aliasDuplicateObjects: false, lineWidth: 0}) : '')
  const before = change.action === 'created' ? '' : text(change.before)
  const after = change.action === 'deleted' ? '' : text(change.after)
  return createTwoFilesPatch(`live ${change.ref}`, `${change.action === 'deleted' ? 'pruned' : 'applied'} ${change.ref}`, before, after, '', '', {context: 3})
}

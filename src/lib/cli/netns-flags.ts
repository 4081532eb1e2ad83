// Flags shared by `ztctl redirect …` and `ztctl diag …`: which network namespace, where the state cache
// and the agent's socket are. Defaults come from the in-pod protocol module (no heavy imports).
import {Flags} from '@oclif/core'

import {DEFAULT_INPOD_SOCKET, DEFAULT_INPOD_STATE_DIR} from '../inpod/protocol.js'

export const netnsFlag = Flags.string({description: 'path of the network namespace (/var/run/netns/NAME or /proc/PID/ns/net)', exclusive: ['pid']})
export const pidFlag = Flags.integer({description: 'PID of a process in the network namespace', exclusive: ['netns'], min: 1})
export const stateDirFlag = Flags.string({default: DEFAULT_INPOD_STATE_DIR, description: 'state cache folder (the agent loads it on start)', env: 'ZTCTL_INPOD_STATE_DIR'})
export const agentSocketFlag = Flags.string({default: DEFAULT_INPOD_SOCKET, description: 'the node agent\'s in-pod Unix socket', env: 'ZTCTL_INPOD_SOCKET'})

// What the app commands share (`terminal|file|script config`, `terminal open`, `file get|list`, `script run`):
// the flags of an app's configuration and the identity a client acts as.
import {Flags} from '@oclif/core'

import type {AppName} from '../config/types.js'
import type {AppConfigInput} from '../mesh/apps.js'
import {BaseCommand} from './base-command.js'
import {controllerFlags, dryRunFlags, waitFlags} from './flag-groups.js'
import {dryRunText} from './render.js'

/** Act as another identity than the context's (an enrolled identity file). */
export const identityFlag = {
  ...controllerFlags,
  identity: Flags.string({char: 'i', description: 'act as this identity file (written by `ztctl enroll`) instead of the context\'s identity'}),
}

export const appConfigFlags = {
  ...controllerFlags,
  ...waitFlags,
  ...dryRunFlags,
  'add-user': Flags.string({description: 'allow @IDENTITY, #ROLE or * (any mesh identity) to use the app (repeatable)', multiple: true}),
  agent: Flags.string({description: 'identity name of the agent that hosts the app', required: true}),
  disable: Flags.boolean({description: 'switch the app off on the agent (its settings stay; live sessions end)', exclusive: ['enable']}),
  enable: Flags.boolean({description: 'switch the app on again (a first config switches it on)', exclusive: ['disable']}),
  'remove-user': Flags.string({description: 'take an entry off the allow list (repeatable)', multiple: true}),
}

type ConfigFlags = {'add-user'?: string[]; agent: string; disable?: boolean; enable?: boolean; 'remove-user'?: string[]}

/** `ztctl APP config`: change the app's settings on one agent and print them. */
export abstract class AppConfigCommand extends BaseCommand<typeof AppConfigCommand> {
  static override flags = appConfigFlags

  protected async configure(app: AppName, settings: Partial<AppConfigInput> = {}): Promise<unknown> {
    const {configureApp, describeApp} = await import('../mesh/apps.js')
    const flags: ConfigFlags = this.flags
    const enabled = flags.enable ? true : flags.disable ? false : undefined
    const {describeOutcome} = await import('../mesh/rollout.js')
    const change = await this.withController((api) => configureApp(api, {
      ...settings, addUsers: flags['add-user'], agent: flags.agent, app, enabled, removeUsers: flags['remove-user'],
    }, this.changeOptions))
    return this.render(change, () => (change.dryRun ? dryRunText(change.dryRun) : `${describeApp(change.app)}\n(${describeOutcome(change)})`))
  }
}

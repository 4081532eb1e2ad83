#!/usr/bin/env node
// Compile cache makes every later start cheaper; it is absent on some Node builds.
import module from 'node:module'
import {execute} from '@oclif/core'

module.enableCompileCache?.()
await execute({dir: import.meta.url})

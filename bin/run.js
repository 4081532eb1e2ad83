#!/usr/bin/env node
// Node's version first, before anything that needs a newer one (node:sqlite, process.execve): the
// `engines` field of package.json is advice npm gives, not a check at run time. Keep in step with it.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 13)) {
  process.stderr.write(
    `Error (ZT_ERR_NODE_VERSION): ztctl needs Node.js 22.13 or newer; this is Node.js ${process.version} (${process.execPath})\n` +
      'Try this: install Node.js 22 LTS or newer (https://nodejs.org, or `nvm install 22`), or in a ztctl checkout run `. .ci/env.sh`, which puts Node 24 on PATH\n',
  )
  process.exit(1)
}

// Compile cache makes every later start cheaper; it is absent on some Node builds.
const {default: module} = await import('node:module')
module.enableCompileCache?.()
const {execute} = await import('@oclif/core')
await execute({dir: import.meta.url})

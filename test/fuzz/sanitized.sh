#!/usr/bin/env bash
# The C engine under AddressSanitizer + UndefinedBehaviorSanitizer (gcc's runtime): build the addons with
# ZTCTL_SANITIZE=1, check that the sanitizer reports a known bug here, then run the fuzz target and the tunnel
# tests against that build with libasan preloaded into node. Any sanitizer report fails the run. The plain
# build is restored on exit, whatever happened. Not part of `npm test`.
#   bash test/fuzz/sanitized.sh [FUZZ_SECONDS]      (default 60; needs gcc, libasan8, libubsan1: .ci/debian-packages.txt)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
seconds=${1:-60}
work=$(mktemp -d /tmp/ztctl-sanitized.XXXXXX)
restore() {
  unset LD_PRELOAD
  node src/lib/netns/native/build.mjs >/dev/null 2>&1 || echo "sanitized.sh: restoring the plain build failed: run npm run build" >&2
  rm -rf "$work"
}
trap restore EXIT

ZTCTL_SANITIZE=1 node src/lib/netns/native/build.mjs
linked=$(ldd build/Release/ztctl_hbone.node)
[[ $linked == *libasan* && $linked == *libubsan* ]] || { echo "sanitized.sh: the addon is not linked with libasan and libubsan" >&2; exit 1; }
asan=$(gcc -print-file-name=libasan.so)
# detect_leaks=0: node itself does not free everything at exit; growth of ours is what the fd/RSS tests bound.
# quarantine_size_mb=64 (default 256): every allocation of node goes through ASan once preloaded, and a quarantine
# of freed memory that large alone breaks the RSS bounds of test/proxy/hostile-peers.test.ts.
sanitizer_env=(LD_PRELOAD="$asan" ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:quarantine_size_mb=64 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=0)
reports='ERROR: AddressSanitizer|runtime error:|SUMMARY: [A-Za-z]+Sanitizer'

# The sanitizers work on this machine: a heap overflow and a signed overflow, built the same way, are reported.
printf '#include <stdlib.h>\n#include <limits.h>\nint main(int c, char **v) { int x = INT_MAX + c; (void)v; char *p = malloc(4); p[c + 3] = 1; return x; }\n' > "$work/canary.c"
gcc -fsanitize=address,undefined -g "$work/canary.c" -o "$work/canary"
if env ASAN_OPTIONS=detect_leaks=0 "$work/canary" 2> "$work/canary.log"; then :; fi
grep -q 'heap-buffer-overflow' "$work/canary.log" && grep -q 'runtime error: signed integer overflow' "$work/canary.log" \
  || { echo "sanitized.sh: the sanitizers do not report a known bug here:" >&2; cat "$work/canary.log" >&2; exit 1; }

status=0
echo "== fuzz target, ${seconds} s, sanitized C engine"
env "${sanitizer_env[@]}" node --import tsx test/fuzz/h2-surfaces.ts --seconds "$seconds" --report "$work/fuzz.json" 2>&1 | tee "$work/fuzz.log" || status=1
echo "== tunnel tests, sanitized C engine"
env "${sanitizer_env[@]}" node --import tsx --test --test-concurrency=1 --test-timeout=300000 \
  test/proxy/hbone-engine.test.ts test/proxy/tunnel.test.ts test/proxy/hostile-peers.test.ts 2>&1 | tee "$work/tests.log" | grep -E '^(✔|✖|ℹ (tests|pass|fail))' || true
grep -qE '^ℹ fail 0$' "$work/tests.log" || { echo "sanitized.sh: tunnel tests failed under the sanitizers" >&2; status=1; }
if grep -qE "$reports" "$work/fuzz.log" "$work/tests.log"; then
  echo "sanitized.sh: sanitizer reports:" >&2
  grep -hE -A 20 "$reports" "$work/fuzz.log" "$work/tests.log" | head -100 >&2
  status=1
fi
echo "== sanitizer findings: $(cat "$work/fuzz.log" "$work/tests.log" | grep -cE "$reports" || true)"
exit $status

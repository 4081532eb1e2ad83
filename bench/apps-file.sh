#!/usr/bin/env bash
# apps-file.sh - the file app's throughput next to the peers that move one file between two hosts: scp
# (OpenSSH, its own sshd on 127.0.0.1) and a plain HBONE tunnel carrying the same bytes. One controller and
# two agents on loopback; agent-a publishes a file of APPS_FILE_MB and also hosts a tunnel to a TCP server
# that sends that same file; agent-b is the tunnel's entry. Interleaved, APPS_REPS times each:
#   tunnel       socat through agent-b → agent-a → the file server, bytes to /dev/null (the wire alone)
#   tunnel+disk  the same into a file, then sync and sha256sum (what `file get` does besides moving bytes)
#   scp+verify   scp from the sshd (key auth, SFTP protocol, default cipher) into a file, sync, sha256sum
#   file get     `ztctl file get` (its own identity, the SHA-256 computed while streaming, fsync, rename)
# Prints the medians and the ratios; writes $OUT/apps-file.json.
#
#   bash bench/apps-file.sh                  # 500 MB, 3 reps
#   APPS_FILE_MB=100 APPS_REPS=5 bash bench/apps-file.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MB=${APPS_FILE_MB:-500}
REPS=${APPS_REPS:-3}
OUT=${OUT:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/ztctl-bench-apps-XXXXXX)
export ZTCTL_HOME=$WORK/home NO_COLOR=1
mkdir -p "$ZTCTL_HOME/agents"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
zt() { (cd "$ZTCTL_HOME" && node "$ROOT/bin/run.js" "$@"); }
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
for tool in socat sha256sum scp ssh-keygen; do command -v $tool >/dev/null || { echo "apps-file: needs $tool" >&2; exit 1; }; done
[[ -x /usr/sbin/sshd ]] || { echo "apps-file: needs /usr/sbin/sshd (Debian package openssh-server)" >&2; exit 1; }
[[ -d $ROOT/dist/commands ]] || { echo "apps-file: run \`npm run build\` first" >&2; exit 1; }

(cd "$ZTCTL_HOME" && exec node "$ROOT/bin/run.js" controller run --listen 127.0.0.1:0 --data-dir "$WORK/ctl" >"$WORK/ctl.out" 2>"$WORK/ctl.err") &
PIDS+=($!)
for _ in $(seq 100); do grep -q 'controller listening at' "$WORK/ctl.out" 2>/dev/null && break; sleep 0.1; done
for name in agent-a agent-b alice; do
  if [[ $name == agent-* ]]; then zt identity create "$name" -a agent >/dev/null; else zt identity create "$name" >/dev/null; fi
  zt enroll "$name.jwt" >/dev/null
done
for name in agent-a agent-b; do
  (cd "$ZTCTL_HOME" && exec node "$ROOT/bin/run.js" agent run -i "$name.json" --hbone 127.0.0.1:0 --admin 127.0.0.1:0 --metrics 127.0.0.1:0 \
    --readiness 127.0.0.1:0 --ready-file "$ZTCTL_HOME/agents/$name.json" --log-level warn >"$WORK/$name.log" 2>&1) &
  PIDS+=($!)
done
for _ in $(seq 200); do [[ -f $ZTCTL_HOME/agents/agent-a.json && -f $ZTCTL_HOME/agents/agent-b.json ]] && break; sleep 0.1; done

head -c $((MB * 1000 * 1000)) /dev/urandom >"$WORK/file.bin"
SERVER_PORT=$(free_port)
ENTRY_PORT=$(free_port)
node -e 'const [file, port] = process.argv.slice(1); require("net").createServer((s) => { s.on("error", () => {}); require("fs").createReadStream(file).pipe(s) }).listen(+port, "127.0.0.1")' "$WORK/file.bin" "$SERVER_PORT" &
PIDS+=($!)
zt tunnel open outbound tcp/bench-file --agent agent-a --target "127.0.0.1:$SERVER_PORT" >/dev/null
zt tunnel open inbound tcp/bench-file --agent agent-b --listen "127.0.0.1:$ENTRY_PORT" >/dev/null
zt file config --agent agent-a --add-user @alice >/dev/null
zt file publish "$WORK/file.bin" --as bench.bin --agent agent-a >/dev/null
for _ in $(seq 300); do zt proxy-config files agent-a 2>/dev/null | grep -q '[0-9a-f]\{64\}' && break; sleep 0.2; done

# The scp peer: an sshd of our own on a free loopback port, keys made here, nothing of the machine's used.
SSH_PORT=$(free_port)
mkdir -p "$WORK/ssh" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh/client_key"
cp "$WORK/ssh/client_key.pub" "$WORK/ssh/authorized_keys"
cat >"$WORK/ssh/sshd_config" <<EOF
ListenAddress 127.0.0.1:$SSH_PORT
HostKey $WORK/ssh/host_key
AuthorizedKeysFile $WORK/ssh/authorized_keys
PidFile $WORK/ssh/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
StrictModes no
Subsystem sftp internal-sftp
EOF
/usr/sbin/sshd -D -e -f "$WORK/ssh/sshd_config" 2>"$WORK/sshd.log" &
PIDS+=($!)
SCP=(scp -q -P "$SSH_PORT" -i "$WORK/ssh/client_key" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
for _ in $(seq 100); do "${SCP[@]}" "$(id -un)@127.0.0.1:/dev/null" "$WORK/probe" 2>/dev/null && break; sleep 0.1; done

seconds() { local start=$(date +%s%N); "$@" >/dev/null 2>&1; echo "$(( ($(date +%s%N) - start) / 1000000 ))"; }
run_tunnel() { socat -u "TCP:127.0.0.1:$ENTRY_PORT" /dev/null; }
run_tunnel_disk() { rm -f "$WORK/t.out"; socat -u "TCP:127.0.0.1:$ENTRY_PORT" "CREATE:$WORK/t.out" && sync -d "$WORK/t.out" && sha256sum "$WORK/t.out"; }
run_scp() { rm -f "$WORK/s.out"; "${SCP[@]}" "$(id -un)@127.0.0.1:$WORK/file.bin" "$WORK/s.out" && sync -d "$WORK/s.out" && sha256sum "$WORK/s.out"; }
run_get() { rm -f "$WORK/g.out"; zt file get bench.bin -o "$WORK/g.out" --identity "$ZTCTL_HOME/alice.json"; }
declare -A TIMES=([tunnel]="" [tunnel+disk]="" [scp]="" [file get]="")
for rep in $(seq "$REPS"); do
  TIMES[tunnel]+=" $(seconds run_tunnel)"
  TIMES[tunnel+disk]+=" $(seconds run_tunnel_disk)"
  TIMES[scp]+=" $(seconds run_scp)"
  TIMES[file get]+=" $(seconds run_get)"
  echo "apps-file: rep $rep/$REPS done" >&2
done
cmp "$WORK/file.bin" "$WORK/g.out" || { echo "apps-file: file get delivered different bytes" >&2; exit 1; }
cmp "$WORK/file.bin" "$WORK/s.out" || { echo "apps-file: scp delivered different bytes (see $WORK/sshd.log)" >&2; exit 1; }

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
T_TUNNEL=$(echo "${TIMES[tunnel]}" | median)
T_DISK=$(echo "${TIMES[tunnel+disk]}" | median)
T_GET=$(echo "${TIMES[file get]}" | median)
T_SCP=$(echo "${TIMES[scp]}" | median)
node -e '
const [mb, reps, tunnel, disk, get, scp, out] = process.argv.slice(1)
const rate = (ms) => (Number(mb) / (Number(ms) / 1000)).toFixed(0)
const rows = [["plain HBONE tunnel → /dev/null", tunnel], ["plain HBONE tunnel → file, sync, sha256sum", disk], ["scp (OpenSSH) → file, sync, sha256sum", scp], ["ztctl file get (verified, fsync, rename)", get]]
console.log(`file transfer, ${mb} MB, median of ${reps} (loopback, load ${require("os").loadavg()[0].toFixed(1)}):`)
for (const [name, ms] of rows) console.log(`  ${name.padEnd(46)} ${(ms / 1000).toFixed(2).padStart(7)} s  ${rate(ms).padStart(5)} MB/s`)
const ratio = (ms) => (Number(ms) / Number(get)).toFixed(2)
console.log(`  file get throughput vs scp+verify: ${ratio(scp)}x; vs tunnel+disk: ${ratio(disk)}x; vs tunnel alone: ${ratio(tunnel)}x (above 1: file get is faster)`)
require("fs").writeFileSync(out, JSON.stringify({mb: +mb, reps: +reps, ms: {fileGet: +get, scp: +scp, tunnel: +tunnel, tunnelDisk: +disk}}, null, 2) + "\n")
' "$MB" "$REPS" "$T_TUNNEL" "$T_DISK" "$T_GET" "$T_SCP" "$OUT/apps-file.json"

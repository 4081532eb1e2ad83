#!/usr/bin/env bash
# up.sh — start one real Kubernetes 1.20 cluster on this machine and print its admin kubeconfig path.
#   control plane: etcd (data on /dev/shm) + kube-apiserver + controller-manager + scheduler, one CA (EC P-256)
#   ZTK8S_NODES=1|2: per node a bridge, containerd + runc + CNI bridge/host-local, kubelet (cgroupfs, its own
#   --cgroup-root); one kube-proxy (iptables mode) for the host's network stack, which both nodes share.
# Callers hold the machine-wide lock ($ZTCTL_K8S_LOCK) for the life of the cluster (test/helpers/k8s.ts and
# run.sh do); nothing started here inherits it. Everything made is recorded in the state dir; down.sh undoes it.
#
# Network (B = ZTK8S_NET, a second octet no route of this machine uses): the cluster owns 10.B.0.0/16.
#   node i: bridge zk<ID>n<i> = 10.B.i.1 (the node IP), pods 10.B.i.0/24 from .10; pods route 10.B.0.0/16 via
#   their bridge and have no default route. Services 10.B.128.0/20 (kubernetes = 10.B.128.1). The host routes
#   10.B.0.0/16 to `unreachable` and forwards only packets that come in on our bridges, so no packet of the
#   cluster ever leaves the machine. kube-apiserver listens on node 1's IP and advertises it (the endpoint
#   reconciler keeps the `kubernetes` Service pointing at it); with ZTK8S_NODES=0 it listens on 127.0.0.1.
#
# Env: ZTK8S_STATE (required: the run's state dir), ZTK8S_NODES (0|1|2, default 1), ZTK8S_NET, ZTK8S_API_PORT,
#   ZTK8S_ETCD_PORT (default: picked free), ZTK8S_TIMEOUT (s, default 90), ZTK8S_OWNER_PID (the process the
#   cluster lives for, default the caller), ZTCTL_K8S_CACHE.
# Writes $ZTK8S_STATE/cluster.json (addresses, nodes, sockets, timings) and prints the kubeconfig path.
set -euo pipefail
LOG_TAG=up
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
need_root
S=${ZTK8S_STATE:?set ZTK8S_STATE to a new state directory (below $K8S_STATE_ROOT for the sweep to find it)}
NODES=${ZTK8S_NODES:-1}
TIMEOUT=${ZTK8S_TIMEOUT:-90}
[[ $NODES =~ ^[012]$ ]] || die "ZTK8S_NODES must be 0, 1 or 2 (got $NODES)"
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  [[ -x $K8S_BIN/$b ]] || die "no $b in $K8S_BIN: run test/k8s/cluster/build.sh first (~5.5 min cold; npm test does it)"
done
need_cmds etcd:etcd-server openssl:openssl curl:curl ip:iproute2 ss:iproute2
if ((NODES)); then
  for b in kubelet kube-proxy; do [[ -x $K8S_BIN/$b ]] || die "no $b in $K8S_BIN: run test/k8s/cluster/build.sh"; done
  need_cmds containerd:containerd ctr:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins \
    iptables:iptables conntrack:conntrack
fi
[[ -e $S ]] && die "$S exists: a state dir is used once (down.sh it first)"
T0=$(now_ms)
ID=$(basename "$S" | tr -cd 'a-z0-9' | tail -c 6)
mkdir -p "$S"/{pki,pids,logs,created}
echo "$ID" > "$S/id"
# who owns the run (PID + start time, so a reused PID does not count): the sweep leaves a live owner's run alone
owner=${ZTK8S_OWNER_PID:-$PPID}
echo "$owner $(proc_start "$owner")" > "$S/owner"

# ---- addresses and ports: free on this machine (ports below the NodePort range and the ephemeral ports) ---
port_free() { [[ -z $(ss -Htan "( sport = :$1 )" 2>/dev/null) ]]; }
pick_port() { local p; for _ in $(seq 50); do p=$((20000 + RANDOM % 10000)); port_free "$p" && port_free $((p + 1)) && { echo "$p"; return; }; done; die "no free port"; }
net_free() { ! ip -4 route show table all | grep -qE "(^|[^0-9.])10\.$1\." && ! ip -4 -o addr | grep -q " 10\.$1\."; }
if [[ -z ${ZTK8S_NET:-} ]]; then
  for _ in $(seq 100); do b=$((100 + RANDOM % 140)); [[ $b == 244 ]] && continue; net_free "$b" && { ZTK8S_NET=$b; break; }; done
  [[ -n ${ZTK8S_NET:-} ]] || die "no free 10.X.0.0/16 for the cluster"
fi
B=$ZTK8S_NET
API_PORT=${ZTK8S_API_PORT:-$(pick_port)}
ETCD_PORT=${ZTK8S_ETCD_PORT:-$(pick_port)}
CLUSTER_CIDR=10.$B.0.0/16 POD_CIDRS=10.$B.0.0/17 SERVICE_CIDR=10.$B.128.0/20 KUBERNETES_SVC_IP=10.$B.128.1
node_ip() { echo "10.$B.$1.1"; }
if ((NODES)); then API_IP=$(node_ip 1); else API_IP=127.0.0.1; fi
SERVER=https://$API_IP:$API_PORT

# start NAME CMD... : a new session, no inherited descriptor but stdio (so no lock fd), log + PID file
start() {
  local n=$1; shift
  ( for fd in $(ls /proc/$BASHPID/fd); do ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null; done
    exec setsid "$@" ) > "$S/logs/$n.log" 2>&1 < /dev/null &
  echo $! > "$S/pids/$n.pid"
}
wait_for() {  # wait_for WHAT CMD... : poll every 0.1 s until CMD succeeds or TIMEOUT
  local what=$1; shift; local end=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || die "$what not ready after ${TIMEOUT}s (logs in $S/logs)"
    sleep 0.1
  done
}

# ---- PKI ---------------------------------------------------------------------------------------------
P=$S/pki
ossl() { openssl "$@" 2>/dev/null; }
ossl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout "$P/ca.key" -out "$P/ca.crt" \
  -days 3650 -subj "/CN=ztctl-k8s-ca-$ID"
leaf() {  # leaf NAME SUBJECT EKU [SAN]
  ossl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout "$P/$1.key" -out "$P/$1.csr" -subj "$2"
  { echo "basicConstraints=CA:FALSE"; echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$3"; [[ -n ${4:-} ]] && echo "subjectAltName=$4"; } > "$P/$1.ext"
  ossl x509 -req -in "$P/$1.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -out "$P/$1.crt" -days 3650 -extfile "$P/$1.ext"
  rm -f "$P/$1.csr" "$P/$1.ext"
}
leaf apiserver /CN=kube-apiserver serverAuth "IP:127.0.0.1,IP:$API_IP,IP:$KUBERNETES_SVC_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
leaf admin "/O=system:masters/CN=ztctl-admin" clientAuth
leaf apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
leaf controller-manager /CN=system:kube-controller-manager clientAuth
leaf scheduler /CN=system:kube-scheduler clientAuth
leaf kube-proxy /CN=system:kube-proxy clientAuth
for i in $(seq "$NODES"); do
  leaf "node-$i" "/O=system:nodes/CN=system:node:node-$i" clientAuth
  leaf "node-$i-serving" "/O=system:nodes/CN=system:node:node-$i" serverAuth "IP:$(node_ip "$i"),DNS:node-$i"
done
ossl ecparam -name prime256v1 -genkey -noout -out "$P/sa.key" && ossl ec -in "$P/sa.key" -pubout -out "$P/sa.pub"
kubeconfig() {  # kubeconfig FILE CERT: self-contained (certs embedded)
  cat > "$1" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: ztk8s-$ID
  cluster: {server: "$SERVER", certificate-authority-data: $(base64 -w0 < "$P/ca.crt")}
users:
- name: $2
  user: {client-certificate-data: $(base64 -w0 < "$P/$2.crt"), client-key-data: $(base64 -w0 < "$P/$2.key")}
contexts:
- name: ztk8s-$ID
  context: {cluster: ztk8s-$ID, user: $2}
current-context: ztk8s-$ID
KCFG
}
KCFG=$S/admin.kubeconfig
for c in admin controller-manager scheduler kube-proxy; do kubeconfig "$S/$c.kubeconfig" "$c"; done
T_PKI=$(now_ms)

# ---- host network: bridges own the node IPs, the cluster's /16 is unreachable elsewhere ----------------
if ((NODES)); then
  for i in $(seq "$NODES"); do
    br=zk${ID}n$i
    ip link add "$br" type bridge && echo "$br" >> "$S/created/bridges"
    ip addr add "$(node_ip "$i")/24" dev "$br"
    # forward what comes in on this bridge only (ip_forward stays as it is for every other interface)
    sysctl -qw "net.ipv4.conf.$br.forwarding=1"
    ip link set "$br" up
  done
  ip route add unreachable "$CLUSTER_CIDR" proto $K8S_ROUTE_PROTO && echo "unreachable $CLUSTER_CIDR" >> "$S/created/routes"
  # host-originated Service traffic is DNATed by kube-proxy in OUTPUT; until then it stays on our bridge
  ip route add "$SERVICE_CIDR" dev "zk${ID}n1" src "$(node_ip 1)" proto $K8S_ROUTE_PROTO
fi

# ---- etcd ----------------------------------------------------------------------------------------------
ETCD_DATA=$S/etcd
if [[ -d /dev/shm && -w /dev/shm ]]; then ETCD_DATA=/dev/shm/ztk8s-$ID-etcd; echo "$ETCD_DATA" > "$S/created/etcd-data"; fi
start etcd etcd --name ztk8s --data-dir "$ETCD_DATA" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-cluster "ztk8s=http://127.0.0.1:$((ETCD_PORT + 1))" --listen-metrics-urls "" \
  --quota-backend-bytes 2147483648 --log-level warn
wait_for etcd curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"
T_ETCD=$(now_ms)

# ---- kube-apiserver --------------------------------------------------------------------------------------
if ((NODES)); then reconciler=lease; else reconciler=none; fi   # a loopback endpoint is refused
start kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address="$API_IP" --secure-port="$API_PORT" --insecure-port=0 \
  --advertise-address="$API_IP" --endpoint-reconciler-type=$reconciler \
  --service-cluster-ip-range="$SERVICE_CIDR" --service-node-port-range=30000-32767 \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --allow-privileged=true \
  --client-ca-file="$P/ca.crt" --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
  --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" --kubelet-client-key="$P/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$P/ca.crt" --kubelet-preferred-address-types=InternalIP \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --api-audiences=https://kubernetes.default.svc.cluster.local \
  --profiling=false --event-ttl=1h
api() { curl -fsS --max-time 2 --cacert "$P/ca.crt" --cert "$P/admin.crt" --key "$P/admin.key" "$SERVER$1"; }
wait_for kube-apiserver api /readyz
T_API=$(now_ms)

# ---- controller-manager + scheduler (serving ports off: nothing to clash) ---------------------------------
start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig="$S/controller-manager.kubeconfig" --leader-elect=false --port=0 --secure-port=0 \
  --use-service-account-credentials=true --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" --controllers='*,bootstrapsigner,tokencleaner'
start kube-scheduler "$K8S_BIN/kube-scheduler" --kubeconfig="$S/scheduler.kubeconfig" --leader-elect=false --port=0 --secure-port=0

# ---- nodes -------------------------------------------------------------------------------------------------
if ((NODES)); then
  # what kubelet makes outside the state dir, recorded before it runs so down.sh removes only that
  for k in $K8S_SYSCTLS; do echo "$k=$(sysctl -n "$k")"; done > "$S/created/sysctl.saved"
  for d in /var/log/pods /var/log/containers /var/lib/kubelet; do [[ -e $d ]] || echo "$d"; done > "$S/created/dirs"
  IMAGES=$("$HERE/base-images.sh")
  # On a real node / is a shared mount (systemd), so the pods' netns the runtime mounts later reach a
  # DaemonSet's HostToContainer mount of the netns dir; this host's / is private: give the directory of the
  # nodes' containerd states that property. down.sh unmounts it with everything below $S.
  mkdir -p "$S/cri-state" && mount --bind "$S/cri-state" "$S/cri-state" && mount --make-shared "$S/cri-state"
  for i in $(seq "$NODES"); do
    # a node's files are under $S/<node name> (test/helpers/k8s.ts sharedNodeValues: the nodes share this
    # machine's filesystem, one set of values with $(NODE_NAME) in the paths names each node's own dirs)
    N=$S/node-$i; IP=$(node_ip "$i"); SOCK=$N/containerd/containerd.sock; CG=/ztk8s-$ID-n$i
    # containerd's state (and in it the pods' netns: netns_mounts_under_state_dir) under $S/cri-state/<node>
    # and the agents' run dir under $S/ztctl-run/<node>: one path with $(NODE_NAME) names each node's own
    # directory, below a directory that holds nothing else (an agent mounts it whole, docs/kubernetes-cni.md)
    CSTATE=$S/cri-state/node-$i
    mkdir -p "$N"/{containerd,cni/net.d,cni/ipam,cni/bin,kubelet} "$S/ztctl-run/node-$i" "$CSTATE/io.containerd.grpc.v1.cri/netns"
    # a plugin dir of our own (links to Debian's plugins): a CNI DaemonSet under test can hostPath it and its
    # net.d and chain itself in without touching /etc/cni or /usr/lib/cni
    for f in /usr/lib/cni/*; do ln -sf "$f" "$N/cni/bin/"; done
    cat > "$N/cni/net.d/10-ztk8s.conflist" <<CNI
{"cniVersion": "0.4.0", "name": "ztk8s", "plugins": [
  {"type": "bridge", "bridge": "zk${ID}n$i", "isGateway": false, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$N/cni/ipam", "routes": [{"dst": "$CLUSTER_CIDR"}],
            "ranges": [[{"subnet": "10.$B.$i.0/24", "gateway": "$IP", "rangeStart": "10.$B.$i.10"}]]}}]}
CNI
    cat > "$N/containerd/config.toml" <<TOML
version = 2
root = "$N/containerd/root"
state = "$CSTATE"
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "ztctl.local/pause:dev"
  netns_mounts_under_state_dir = true
  # root here lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj (sandboxes ask for -998) and fails
  # with "can't get final child's PID from pipe: EOF"; this clamps oom_score_adj to >= containerd's own
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$N/cni/bin"
    conf_dir = "$N/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$N/containerd/certs.d"
TOML
    # no registry exists: a pull of any image that was not imported goes to a closed loopback port, so it fails
    # at once (ErrImagePull) and no name is ever looked up or dialled outside the machine
    mkdir -p "$N/containerd/certs.d/_default"
    printf 'server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n' \
      > "$N/containerd/certs.d/_default/hosts.toml"
    start "n$i-containerd" containerd --config "$N/containerd/config.toml"
    # the node's cgroup root, in every hierarchy (kubelet wants it to exist); cpuset needs cpus/mems first
    for h in /sys/fs/cgroup/*/; do
      [[ -d $h$CG ]] && continue
      mkdir "$h$CG" && echo "$h$CG" >> "$S/created/cgroups"
      [[ -f ${h}cpuset.cpus ]] && cat "${h}cpuset.cpus" > "$h$CG/cpuset.cpus" && cat "${h}cpuset.mems" > "$h$CG/cpuset.mems"
    done
    cat > "$N/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: $P/ca.crt}}
authorization: {mode: Webhook}
tlsCertFile: $P/node-$i-serving.crt
tlsPrivateKeyFile: $P/node-$i-serving.key
cgroupDriver: cgroupfs
cgroupRoot: $CG
failSwapOn: false
makeIPTablesUtilChains: false
clusterDomain: cluster.local
serializeImagePulls: false
evictionHard: {memory.available: "100Mi"}
imageGCHighThresholdPercent: 100
fileCheckFrequency: 5s
syncFrequency: 10s
nodeStatusUpdateFrequency: 5s
YAML
    kubeconfig "$S/node-$i.kubeconfig" "node-$i"
  done
  for i in $(seq "$NODES"); do
    N=$S/node-$i; SOCK=$N/containerd/containerd.sock
    wait_for "node-$i containerd" ctr --address "$SOCK" version
    for t in pause busybox; do ctr --address "$SOCK" -n k8s.io images import "$IMAGES/$t.tar" >/dev/null; done
    start "n$i-kubelet" "$K8S_BIN/kubelet" --config="$N/kubelet/config.yaml" \
      --kubeconfig="$S/node-$i.kubeconfig" --root-dir="$N/kubelet/root" --cert-dir="$N/kubelet/pki" \
      --container-runtime=remote --container-runtime-endpoint="unix://$SOCK" \
      --pod-infra-container-image=ztctl.local/pause:dev --node-ip="$(node_ip "$i")" --hostname-override="node-$i" -v=1
  done
  # one kube-proxy: both nodes share this host's network stack, so one set of iptables rules serves both
  nodeport_addrs=$(for i in $(seq "$NODES"); do printf '"%s/32",' "$(node_ip "$i")"; done)
  cat > "$S/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $S/kube-proxy.kubeconfig}
hostnameOverride: node-1
bindAddress: $(node_ip 1)
healthzBindAddress: $(node_ip 1):10256
metricsBindAddress: $(node_ip 1):10249
mode: iptables
clusterCIDR: $POD_CIDRS
nodePortAddresses: [${nodeport_addrs%,}]
# 0 = leave the host's conntrack settings as they are
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {masqueradeAll: false, syncPeriod: 30s, minSyncPeriod: 0s}
YAML
  echo 1 > "$S/created/kube-proxy"
  start kube-proxy "$K8S_BIN/kube-proxy" --config="$S/kube-proxy.yaml" -v=1
fi
sa_token() { api /api/v1/namespaces/default/serviceaccounts/default | grep -q '"secrets"'; }
wait_for "controller-manager (default ServiceAccount token)" sa_token
T_KCM=$(now_ms)
if ((NODES)); then
  for i in $(seq "$NODES"); do
    node_ready() { api "/api/v1/nodes/node-$1" | tr -d ' \n' | grep -q '"type":"Ready","status":"True"'; }
    wait_for "node-$i (kubelet Ready)" node_ready "$i"
  done
  # kube-proxy has synced once the kubernetes Service has its DNAT rule
  proxy_synced() { iptables -w -t nat -S KUBE-SERVICES | grep -q "default/kubernetes:https"; }
  wait_for "kube-proxy (kubernetes Service rule)" proxy_synced
fi
T_END=$(now_ms)

nodes_json=$(for i in $(seq "$NODES"); do
  printf '{"name":"node-%s","ip":"%s","podCidr":"10.%s.%s.0/24","bridge":"zk%sn%s","cgroupRoot":"/ztk8s-%s-n%s","containerdSocket":"%s","cniConfDir":"%s","cniBinDir":"%s","netnsDir":"%s","runDir":"%s"},' \
    "$i" "$(node_ip "$i")" "$B" "$i" "$ID" "$i" "$ID" "$i" "$S/node-$i/containerd/containerd.sock" "$S/node-$i/cni/net.d" "$S/node-$i/cni/bin" \
    "$S/cri-state/node-$i/io.containerd.grpc.v1.cri/netns" "$S/ztctl-run/node-$i"
done)
cat > "$S/cluster.json" <<JSON
{"id": "$ID", "stateDir": "$S", "kubeconfig": "$KCFG", "server": "$SERVER", "apiAddress": "$API_IP", "apiPort": $API_PORT,
 "etcdPort": $ETCD_PORT, "clusterCidr": "$CLUSTER_CIDR", "podCidr": "$POD_CIDRS", "serviceCidr": "$SERVICE_CIDR",
 "kubernetesServiceIp": "$KUBERNETES_SVC_IP", "nodes": [${nodes_json%,}], "logsDir": "$S/logs",
 "timingsMs": {"pki": $((T_PKI - T0)), "etcd": $((T_ETCD - T_PKI)), "apiserver": $((T_API - T_ETCD)),
               "controllers": $((T_KCM - T_API)), "nodes": $((T_END - T_KCM)), "total": $((T_END - T0))}}
JSON
log "up in $((T_END - T0)) ms: $SERVER, $NODES node(s), logs in $S/logs"
echo "$KCFG"

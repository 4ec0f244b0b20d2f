#!/usr/bin/env bash
# Pod network cost: `pod run --wait-ready` of a one-container pod (image: host, sleep) N times
# sequentially, with CNI (a private bridge/host-local/portmap/firewall network, Debian's plugins)
# and without (an empty --cni-bin-dir: loopback only); median and mean wall time per pod, and the
# difference. Each pod is removed (`pod rm -f`, which runs DEL) before the next, untimed.
#
# usage: bench/pod-cni.sh [-n N]      (default 20; needs root and containernetworking-plugins)
# peapod is $PEAPOD, default target/release/peapod (falls back to target/debug/peapod).
set -euo pipefail
n=20
while getopts n: o; do case $o in n) n=$OPTARG ;; *) exit 2 ;; esac; done
cd "$(dirname "$(readlink -f "$0")")/.."
pp=${PEAPOD:-target/release/peapod}
[ -x "$pp" ] || pp=target/debug/peapod
[ -x "$pp" ] || { echo "build peapod first (cargo build --release)" >&2; exit 1; }
for p in bridge host-local portmap firewall; do
	[ -x /usr/lib/cni/$p ] || { echo "needs /usr/lib/cni/$p: apt-get install containernetworking-plugins" >&2; exit 1; }
done
tmp=$(mktemp -d /tmp/pod-cni.XXXXXX)
br=ppbench$$
trap 'rm -rf "$tmp"; ip link del "$br" 2>/dev/null || true' EXIT
mkdir -p "$tmp/net.d" "$tmp/empty"
cat >"$tmp/net.d/10-bench.conflist" <<JSON
{"cniVersion":"1.0.0","name":"ppbench-$$","plugins":[
 {"type":"bridge","bridge":"$br","isGateway":true,"ipMasq":true,
  "ipam":{"type":"host-local","dataDir":"$tmp/ipam","ranges":[[{"subnet":"10.196.$(($$ % 250)).0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
 {"type":"portmap","capabilities":{"portMappings":true}},{"type":"firewall"}]}
JSON
cat >"$tmp/pod.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: bench}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: host, command: [sleep, "1000"]}]
YAML
pp() { "$pp" --root "$tmp/root" --storage "$tmp/storage" "$@"; }
measure() { # LABEL BIN_DIR
	local t0 t1 i
	: >"$tmp/$1"
	for ((i = 0; i < n + 2; i++)); do
		t0=$(date +%s%N)
		pp pod run --wait-ready 30s --cni-conf-dir "$tmp/net.d" --cni-bin-dir "$2" "$tmp/pod.yaml" >/dev/null 2>&1
		t1=$(date +%s%N)
		pp pod rm -f bench >/dev/null
		((i < 2)) || echo $(((t1 - t0) / 1000)) >>"$tmp/$1"
	done
	sort -n "$tmp/$1" | awk -v l="$1" '{a[NR]=$1; s+=$1} END {printf "%-10s median %6.1f ms  mean %6.1f ms  (%d pods)\n", l, a[int((NR+1)/2)]/1000, s/NR/1000, NR}'
}
echo "peapod: $pp"
measure loopback "$tmp/empty"
measure cni /usr/lib/cni
sort -n "$tmp/loopback" >"$tmp/l.sorted"
sort -n "$tmp/cni" >"$tmp/c.sorted"
paste "$tmp/l.sorted" "$tmp/c.sorted" | awk '{print $2 - $1}' | sort -n |
	awk '{d[NR]=$1} END {printf "CNI adds  %6.1f ms per pod (difference of the medians by rank: median)\n", d[int((NR+1)/2)]/1000}'

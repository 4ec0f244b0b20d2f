#!/usr/bin/env bash
# Pod network cost: `pod run --wait-ready` of a one-container pod (image: host, sleep) N times
# sequentially (the variants interleaved), with CNI (a private bridge/host-local/portmap/firewall network, Debian's plugins)
# and without (an empty --cni-bin-dir: loopback only); median and mean wall time per pod, and the
# difference. Each pod is removed (`pod rm -f`, which runs DEL) before the next, untimed.
# A third run uses a chain of three no-op shell plugins in place of the real ones: what CNI costs
# on peapod's side (netns pin, plugin exec, result cache, marker, /etc/hosts; an upper bound, as
# each no-op plugin is a shell), the rest being the plugins' own work (bridge + host-local, the
# iptables runs of ipMasq and firewall).
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
mkdir -p "$tmp/noop" "$tmp/noop.d"
for p in nop1 nop2 nop3; do
	cat >"$tmp/noop/$p" <<'SH'
#!/bin/sh
cat >/dev/null
[ "$CNI_COMMAND" = ADD ] || exit 0
echo '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"'"$CNI_NETNS"'"}],"ips":[{"address":"10.196.255.2/24","interface":0}]}'
SH
	chmod +x "$tmp/noop/$p"
done
echo '{"cniVersion":"1.0.0","name":"ppbench-noop-'$$'","plugins":[{"type":"nop1"},{"type":"nop2"},{"type":"nop3"}]}' >"$tmp/noop.d/10-noop.conflist"
cat >"$tmp/pod.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: bench}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: host, command: [sleep, "1000"]}]
YAML
pp() { "$pp" --root "$tmp/root" --storage "$tmp/storage" "$@"; }
once() { # LABEL BIN_DIR CONF_DIR: one timed pod run, appended to $tmp/LABEL
	local t0 t1
	t0=$(date +%s%N)
	pp pod run --wait-ready 30s --cni-conf-dir "$3" --cni-bin-dir "$2" "$tmp/pod.yaml" >/dev/null 2>&1
	t1=$(date +%s%N)
	pp pod rm -f bench >/dev/null
	echo $(((t1 - t0) / 1000)) >>"$tmp/$1"
}
echo "peapod: $pp"
# Interleaved, so a change of the machine's load hits the three alike; 2 warm-up rounds.
for ((i = 0; i < n + 2; i++)); do
	((i != 2)) || rm -f "$tmp/loopback" "$tmp/cni" "$tmp/cni-noop"
	once loopback "$tmp/empty" "$tmp/net.d"
	once cni /usr/lib/cni "$tmp/net.d"
	once cni-noop "$tmp/noop" "$tmp/noop.d"
done
for l in loopback cni cni-noop; do
	sort -n "$tmp/$l" | awk -v l="$l" '{a[NR]=$1; s+=$1} END {printf "%-10s median %6.1f ms  mean %6.1f ms  (%d pods)\n", l, a[int((NR+1)/2)]/1000, s/NR/1000, NR}'
done
diff() { # LABEL A B
	sort -n "$tmp/$2" >"$tmp/a.sorted"
	sort -n "$tmp/$3" >"$tmp/b.sorted"
	paste "$tmp/a.sorted" "$tmp/b.sorted" | awk '{print $2 - $1}' | sort -n |
		awk -v l="$1" '{d[NR]=$1} END {printf "%s %6.1f ms per pod (difference by rank: median)\n", l, d[int((NR+1)/2)]/1000}'
}
diff "CNI adds                        " loopback cni
diff "of which peapod (no-op plugins) " loopback cni-noop

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
# The peer, interleaved with them unless -P: podman (CNI backend, runc) on the same conflist and
# plugins, `podman run -d` of the same container with that network against `--network none`
# (podman isolated in the temp dir: its own root, runroot, containers.conf).
#
# usage: bench/pod-cni.sh [-n N] [-P]  (default 20; needs root and containernetworking-plugins;
#        podman, conmon and runc for the peer)
# peapod is $PEAPOD, default target/release/peapod (falls back to target/debug/peapod).
# $PEAPOD_BASE, if set, is a second build (e.g. before a change; its peapod-pause next to it),
# run interleaved with the first on the loopback and CNI variants.
set -euo pipefail
n=20 peer=1
while getopts n:P o; do case $o in n) n=$OPTARG ;; P) peer= ;; *) exit 2 ;; esac; done
cd "$(dirname "$(readlink -f "$0")")/.."
pp=${PEAPOD:-target/release/peapod}
[ -x "$pp" ] || pp=target/debug/peapod
[ -x "$pp" ] || { echo "build peapod first (cargo build --release)" >&2; exit 1; }
for p in bridge host-local portmap firewall; do
	[ -x /usr/lib/cni/$p ] || { echo "needs /usr/lib/cni/$p: apt-get install containernetworking-plugins" >&2; exit 1; }
done
for t in podman conmon runc; do
	[ -z "$peer" ] || command -v "$t" >/dev/null || { echo "${0##*/}: $t is not installed: no podman peer" >&2 && peer=; }
done
tmp=$(mktemp -d /tmp/pod-cni.XXXXXX)
br=ppbench$$
cgparent=/pp-cnibench-$$
had_varlib=
[ ! -e /var/lib/containers ] || had_varlib=1
pm=(env CONTAINERS_CONF="$tmp/containers.conf" CONTAINERS_STORAGE_CONF="$tmp/storage.conf"
	CONTAINERS_REGISTRIES_CONF="$tmp/registries.conf" TMPDIR="$tmp/pmtmp"
	podman --root "$tmp/pmroot" --runroot "$tmp/pmrunroot" --storage-driver vfs --cgroup-manager cgroupfs
	--tmpdir "$tmp/pmtmp" --runtime runc)
cleanup() {
	if [ -n "$peer" ]; then
		"${pm[@]}" rm -af -t 0 >/dev/null 2>&1 || true
		# podman leaves its cgroup parent (and conmon's cgroup in it) and a blob cache behind.
		find /sys/fs/cgroup/*"$cgparent" -depth -type d -exec rmdir {} + 2>/dev/null || true
		[ -n "$had_varlib" ] || rm -rf /var/lib/containers
		umount -R "$tmp/pmroot" 2>/dev/null || true
	fi
	rm -rf "$tmp"
	ip link del "$br" 2>/dev/null || true
}
trap cleanup EXIT
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
base=${PEAPOD_BASE:-}
pp() { "${ppbin:-$pp}" --root "$tmp/root" --storage "$tmp/storage" "$@"; }
once() { # LABEL BIN_DIR CONF_DIR: one timed pod run, appended to $tmp/LABEL
	local t0 t1
	t0=$(date +%s%N)
	pp pod run --wait-ready 30s --cni-conf-dir "$3" --cni-bin-dir "$2" "$tmp/pod.yaml" >/dev/null 2>&1
	t1=$(date +%s%N)
	pp pod rm -f bench >/dev/null
	echo $(((t1 - t0) / 1000)) >>"$tmp/$1"
}
labels=(loopback cni cni-noop)
[ -z "$base" ] || labels+=(base-loopback base-cni)
if [ -n "$peer" ]; then
	mkdir -p "$tmp/pmtmp"
	cat >"$tmp/containers.conf" <<EOC
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=20000:20000"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$tmp/events.log"
tmp_dir = "$tmp/pmtmp"
[network]
network_backend = "cni"
cni_plugin_dirs = ["/usr/lib/cni"]
network_config_dir = "$tmp/net.d"
EOC
	printf '[storage]\ndriver = "vfs"\ngraphroot = "%s/pmroot"\nrunroot = "%s/pmrunroot"\n' "$tmp" "$tmp" >"$tmp/storage.conf"
	: >"$tmp/registries.conf"
	rootfs-tools/busybox-rootfs "$tmp/bb" >/dev/null
	tar -C "$tmp/bb" -c . | "${pm[@]}" import - localhost/ppbb >/dev/null 2>&1
	labels+=(podman-none podman-cni)
fi
pm_once() { # LABEL NETWORK: one timed podman run -d, appended to $tmp/LABEL
	local t0 t1
	t0=$(date +%s%N)
	"${pm[@]}" run -d --network "$2" --cgroup-parent "$cgparent" --name bench localhost/ppbb sleep 1000 >/dev/null
	t1=$(date +%s%N)
	"${pm[@]}" rm -f -t 0 bench >/dev/null
	echo $(((t1 - t0) / 1000)) >>"$tmp/$1"
}
echo "peapod: $pp${base:+; base: $base}${peer:+; podman: $(podman --version)}"
# Interleaved, so a change of the machine's load hits every variant alike; 2 warm-up rounds.
for ((i = 0; i < n + 2; i++)); do
	((i != 2)) || for l in "${labels[@]}"; do rm -f "$tmp/$l"; done
	once loopback "$tmp/empty" "$tmp/net.d"
	once cni /usr/lib/cni "$tmp/net.d"
	once cni-noop "$tmp/noop" "$tmp/noop.d"
	if [ -n "$base" ]; then
		ppbin=$base once base-loopback "$tmp/empty" "$tmp/net.d"
		ppbin=$base once base-cni /usr/lib/cni "$tmp/net.d"
	fi
	if [ -n "$peer" ]; then
		pm_once podman-none none
		pm_once podman-cni "ppbench-$$"
	fi
done
for l in "${labels[@]}"; do
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
[ -z "$base" ] || diff "base: CNI adds                  " base-loopback base-cni
[ -z "$peer" ] || diff "podman: CNI adds                " podman-none podman-cni

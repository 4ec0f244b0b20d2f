#!/usr/bin/env bash
# Many pods on one node: start-up, listing, per-pod memory, teardown and leaks, with podman as
# the peer, in one run (issue 17).
set -euo pipefail

usage() {
	cat <<EOF
usage: ${0##*/} [-n N] [-p M] [-N] [-P]

peapod: N pods (default 200) of 2 containers from \`image: host\` (\`sleep\`, and busybox httpd
with an httpGet readiness probe every 1 s), started by one \`pod run\`. Prints:
  start      time from \`pod run\` to every pod Running with 2/2 ready
  ls         median of 5 \`pod ls\` at N pods
  PSS        supervisor + pause PSS per pod (/proc/PID/smaps_rollup), averaged over the N pods
  rm         \`pod rm -f --all\`
  leaks      processes, mounts and cgroups of the pods left afterwards (must be 0)
podman (unless -P, or podman is not installed): M pods (default min(N, 50)) made by
\`podman pod create\` + 2 \`podman run -d --pod\` (runc; busybox image imported locally; podman
has no readiness probes outside kube play, so its start is to Running), \`podman pod ps\`,
conmon + catatonit PSS, \`podman pod rm -af --time 0\`. When M < N, peapod is measured again at
M pods and the ratios peapod/podman are taken at M.
-N  give the peapod pods a CNI network (a private bridge \`ppscale0\`, 10.233.0.0/16, plugins
    from /usr/lib/cni) instead of loopback only (podman runs with netns none either way).
Needs root, jq, busybox; podman, conmon, catatonit, runc for the peer. peapod is \$PEAPOD or
target/release/peapod.
EOF
}
n=200 m='' cni='' peer=1
while getopts ':n:p:NPh' opt; do
	case $opt in
	n) n=$OPTARG ;;
	p) m=$OPTARG ;;
	N) cni=1 ;;
	P) peer= ;;
	h) usage && exit 0 ;;
	*) usage >&2 && exit 2 ;;
	esac
done
m=${m:-$((n < 50 ? n : 50))}
repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
peapod=${PEAPOD:-$repo/target/release/peapod}
[ -x "$peapod" ] || (cd "$repo" && cargo build --release -q)
for t in jq busybox; do
	command -v "$t" >/dev/null || { echo "${0##*/}: $t is not installed" >&2 && exit 2; }
done
if [ -n "$peer" ]; then
	for t in podman runc conmon catatonit; do
		command -v "$t" >/dev/null || { echo "${0##*/}: $t is not installed: no podman peer" >&2 && peer= && break; }
	done
fi

work=$(mktemp -d /tmp/pp-scale.XXXXXX)
pp=("$peapod" --root "$work/peapod" --storage "$work/storage")
runargs=(--cni-bin-dir "$work/no-cni")
if [ -n "$cni" ]; then
	if ip route | grep -q '^10\.233\.'; then
		echo "${0##*/}: 10.233.0.0/16 is in use here: no CNI run" >&2 && exit 2
	fi
	mkdir -p "$work/cni"
	cat >"$work/cni/10-ppscale.conflist" <<EOC
{"cniVersion": "1.0.0", "name": "ppscale", "plugins": [
  {"type": "bridge", "bridge": "ppscale0", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "dataDir": "$work/ipam", "ranges": [[{"subnet": "10.233.0.0/16"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "firewall"}]}
EOC
	runargs=(--cni-conf-dir "$work/cni" --cni-bin-dir /usr/lib/cni)
fi
pm=(env CONTAINERS_CONF="$work/containers.conf" CONTAINERS_STORAGE_CONF="$work/storage.conf"
	CONTAINERS_REGISTRIES_CONF="$work/registries.conf" TMPDIR="$work/tmp"
	podman --root "$work/root" --runroot "$work/runroot" --storage-driver vfs --cgroup-manager cgroupfs
	--tmpdir "$work/tmp" --runtime runc)
cgparent=/pp-scale-$$
had_varlib=
if [ -e /var/lib/containers ]; then had_varlib=1; fi
cleanup() {
	"${pp[@]}" pod rm -f --all >/dev/null 2>&1 || true
	if [ -n "$peer" ]; then
		"${pm[@]}" pod rm -af --time 0 >/dev/null 2>&1 || true
		# podman leaves its cgroup parent (and conmon's cgroup in it) and a blob cache behind.
		find /sys/fs/cgroup/*"$cgparent" -depth -type d -exec rmdir {} + 2>/dev/null || true
		[ -n "$had_varlib" ] || rm -rf /var/lib/containers
		umount -R "$work/root" 2>/dev/null || true
	fi
	[ -z "$cni" ] || ip link del ppscale0 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/tmp" "$work/storage"
: >"$work/pids"
# kubelet's default maxPods is 110.
echo "maxPods: $((n + 10))" >"$work/storage/node-config.yaml"

ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
pss() { awk '/^Pss:/ { s += $2 } END { print s + 0 }' "$@" 2>/dev/null || true; }
load() { cut -d' ' -f1 /proc/loadavg; }

# peapod at $1 pods: sets start_ms ls_ms pss_kib rm_ms leaks
peapod_run() {
	local count=$1 i t
	: >"$work/pods.yaml"
	for i in $(seq "$count"); do
		cat >>"$work/pods.yaml" <<EOY
---
apiVersion: v1
kind: Pod
metadata: {name: scale-$i}
spec:
  terminationGracePeriodSeconds: 30
  containers:
    - {name: sleep, image: host, command: [sleep, "100000"]}
    - name: web
      image: host
      command: [busybox, httpd, -f, -p, "8080", -h, /etc]
      readinessProbe: {httpGet: {path: /hostname, port: 8080}, periodSeconds: 1}
EOY
	done
	t=$(date +%s%N)
	"${pp[@]}" pod run "${runargs[@]}" "$work/pods.yaml" >/dev/null 2>"$work/run.err" || {
		cat "$work/run.err" >&2
		return 1
	}
	local deadline=$((SECONDS + 600))
	until [ "$("${pp[@]}" pod ls | awk '$2 == "2/2" && $3 == "Running"' | wc -l)" = "$count" ]; do
		[ $SECONDS -lt $deadline ] || { echo "peapod: not all $count pods ready after 600 s" >&2 && return 1; }
		sleep 0.2
	done
	start_ms=$(ms "$t")
	ls_ms=$(for i in 1 2 3 4 5; do
		t=$(date +%s%N)
		"${pp[@]}" pod ls >/dev/null
		ms "$t"
	done | median)
	"${pp[@]}" pod ls -o json >"$work/ls.json"
	local files=() cgroups
	mapfile -t pids < <(jq -r '.items[].peapod | .supervisorPid, .pausePid' "$work/ls.json")
	for i in "${pids[@]}"; do files+=("/proc/$i/smaps_rollup"); done
	pss_kib=$(($(pss "${files[@]}") / count))
	mapfile -t cgroups < <(jq -r '.items[].peapod.cgroup' "$work/ls.json")
	# Every process of the pods (supervisors, pause, containers, probes), from their cgroups.
	local c d
	for c in "${cgroups[@]}"; do
		for d in /sys/fs/cgroup"$c" /sys/fs/cgroup/memory"$c"; do
			[ ! -d "$d" ] || find "$d" -name cgroup.procs -exec cat {} + >>"$work/pids"
		done
	done
	t=$(date +%s%N)
	"${pp[@]}" pod rm -f --all >/dev/null
	rm_ms=$(ms "$t")
	local procs=0 mounts cgs=0 addrs=0 p
	# Killed processes are zombies until their new parent (pid 1) reaps them: not counted.
	while read -r p; do
		case $(awk '/^State:/ { print $2 }' "/proc/$p/status" 2>/dev/null) in
		'' | Z | X) ;;
		*) procs=$((procs + 1)) ;;
		esac
	done <"$work/pids"
	: >"$work/pids"
	mounts=$(grep -c "$work" /proc/self/mountinfo || true)
	for c in "${cgroups[@]}"; do
		for d in /sys/fs/cgroup"$c" /sys/fs/cgroup/*"$c"; do [ ! -d "$d" ] || cgs=$((cgs + 1)); done
	done
	[ ! -d "$work/ipam/ppscale" ] || addrs=$(find "$work/ipam/ppscale" -name '10.*' | wc -l)
	leaks="$procs processes, $mounts mounts, $cgs cgroups${cni:+, $addrs IPs}"
}

# podman at $1 pods: sets pm_start_ms pm_ls_ms pm_pss_kib pm_rm_ms
podman_run() {
	local count=$1 i t c
	cat >"$work/containers.conf" <<EOC
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=20000:20000"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/events.log"
tmp_dir = "$work/tmp"
EOC
	printf '[storage]\ndriver = "vfs"\ngraphroot = "%s/root"\nrunroot = "%s/runroot"\n' "$work" "$work" >"$work/storage.conf"
	: >"$work/registries.conf"
	"$repo/rootfs-tools/busybox-rootfs" "$work/bb" >/dev/null
	tar -C "$work/bb" -c . | "${pm[@]}" import - localhost/ppbb >/dev/null 2>&1
	t=$(date +%s%N)
	for i in $(seq "$count"); do
		"${pm[@]}" pod create --name "scale-$i" --cgroup-parent "$cgparent" >/dev/null
		"${pm[@]}" run -d --pod "scale-$i" --name "scale-$i-sleep" localhost/ppbb sleep 100000 >/dev/null
		"${pm[@]}" run -d --pod "scale-$i" --name "scale-$i-web" localhost/ppbb httpd -f -p 8080 -h /etc >/dev/null
	done
	pm_start_ms=$(ms "$t")
	[ "$("${pm[@]}" ps -q | wc -l)" = $((count * 3)) ] || { echo "podman: not every container runs" >&2 && return 1; }
	pm_ls_ms=$(for i in 1 2 3 4 5; do
		t=$(date +%s%N)
		"${pm[@]}" pod ps >/dev/null
		ms "$t"
	done | median)
	local files=() conmons
	mapfile -t conmons < <(pgrep -f "conmon.*$work" || true)
	for c in "${conmons[@]}"; do
		files+=("/proc/$c/smaps_rollup")
		for i in $(pgrep -P "$c" -x catatonit || true); do files+=("/proc/$i/smaps_rollup"); done
	done
	pm_pss_kib=$(($(pss "${files[@]}") / count))
	t=$(date +%s%N)
	"${pm[@]}" pod rm -af --time 0 >/dev/null
	pm_rm_ms=$(ms "$t")
}

echo "scale: $n pods x 2 containers, $(nproc) CPUs, load average $(load) at the start, network: ${cni:+CNI bridge}${cni:-loopback only}"
peapod_run "$n"
printf '%-8s %5s %12s %10s %14s %10s  %s\n' runtime pods "start ms" "ls ms" "PSS KiB/pod" "rm ms" leaks
printf '%-8s %5s %12s %10s %14s %10s  %s\n' peapod "$n" "$start_ms" "$ls_ms" "$pss_kib" "$rm_ms" "$leaks"
if [ -n "$peer" ]; then
	if [ "$m" != "$n" ]; then
		peapod_run "$m"
		printf '%-8s %5s %12s %10s %14s %10s  %s\n' peapod "$m" "$start_ms" "$ls_ms" "$pss_kib" "$rm_ms" "$leaks"
	fi
	podman_run "$m"
	printf '%-8s %5s %12s %10s %14s %10s\n' podman "$m" "$pm_start_ms" "$pm_ls_ms" "$pm_pss_kib" "$pm_rm_ms"
	awk -v a="$start_ms" -v b="$pm_start_ms" -v c="$ls_ms" -v d="$pm_ls_ms" -v e="$pss_kib" -v f="$pm_pss_kib" \
		-v g="$rm_ms" -v h="$pm_rm_ms" -v m="$m" 'function r(x, y) { return y > 0 ? sprintf("%.3f", x / y) : "n/a" }
		BEGIN { printf "ratio peapod/podman at %d pods: start %s, ls %s, PSS %s, rm %s\n", m, r(a, b), r(c, d), r(e, f), r(g, h) }'
fi
echo "load average $(load) at the end"

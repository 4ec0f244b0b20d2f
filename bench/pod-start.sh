#!/usr/bin/env bash
# Pod start-up and per-pod memory: `peapod pod run` of a 3-container pod against podman
# (`pod create` + 3 `run -d --pod`, with runc), on the same machine, in one run.
set -euo pipefail

usage() {
	cat <<EOF
usage: ${0##*/} [-n N]

Times N starts (default 5) of a pod of three \`sleep\` containers until all run:
  peapod   peapod pod run POD.yaml            (image: host, no image store involved)
  podman   podman pod create; 3x podman run -d --pod (runc, busybox image imported locally)
and prints the median wall time of each and the ratio peapod/podman. Memory: the PSS of
peapod's supervisor + pause against podman's conmon processes + catatonit, for one running
pod (the per-pod cost beyond the containers themselves).
podman runs isolated in a temp dir (its own root, runroot, containers.conf; no network).
Needs root, podman, conmon, catatonit, runc, jq; peapod is \$PEAPOD or target/release/peapod.
EOF
}
n=5
while getopts ':n:h' opt; do
	case $opt in
	n) n=$OPTARG ;;
	h) usage && exit 0 ;;
	*) usage >&2 && exit 2 ;;
	esac
done
repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
peapod=${PEAPOD:-$repo/target/release/peapod}
[ -x "$peapod" ] || (cd "$repo" && cargo build --release -q)
for t in podman runc conmon catatonit jq; do
	command -v "$t" >/dev/null || { echo "${0##*/}: $t is not installed" >&2 && exit 2; }
done

work=$(mktemp -d /tmp/pp-podbench.XXXXXX)
pp=("$peapod" --root "$work/peapod")
pm=(env CONTAINERS_CONF="$work/containers.conf" CONTAINERS_STORAGE_CONF="$work/storage.conf"
	CONTAINERS_REGISTRIES_CONF="$work/registries.conf" TMPDIR="$work/tmp"
	podman --root "$work/root" --runroot "$work/runroot" --storage-driver vfs --cgroup-manager cgroupfs
	--tmpdir "$work/tmp" --runtime runc)
cgparent=/pp-podbench-$$
had_varlib=
if [ -e /var/lib/containers ]; then had_varlib=1; fi
cleanup() {
	"${pp[@]}" pod rm -f bench >/dev/null 2>&1 || true
	"${pm[@]}" pod rm -af --time 0 >/dev/null 2>&1 || true
	# podman leaves its cgroup parent (and conmon's cgroup in it) and a blob cache behind.
	find /sys/fs/cgroup/*"$cgparent" -depth -type d -exec rmdir {} + 2>/dev/null || true
	[ -n "$had_varlib" ] || rm -rf /var/lib/containers
	umount -R "$work/root" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/tmp"
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
cat >"$work/pod.yaml" <<'EOY'
apiVersion: v1
kind: Pod
metadata: {name: bench}
spec:
  terminationGracePeriodSeconds: 0
  containers:
    - {name: a, image: host, command: [sleep, "1000"]}
    - {name: b, image: host, command: [sleep, "1000"]}
    - {name: c, image: host, command: [sleep, "1000"]}
EOY
"$repo/rootfs-tools/busybox-rootfs" "$work/bb"
tar -C "$work/bb" -c . | "${pm[@]}" import - localhost/ppbb >/dev/null 2>&1

ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
pss() { awk '/^Pss:/ { s += $2 } END { print s + 0 }' "$@" 2>/dev/null || true; }
: >"$work/t-peapod"
: >"$work/t-podman"
pp_pss=0 pm_pss=0 pm_procs=0
for i in $(seq "$n"); do
	t=$(date +%s%N)
	"${pp[@]}" pod run "$work/pod.yaml" >/dev/null
	ms "$t" >>"$work/t-peapod"
	if [ "$i" = 1 ]; then
		info=$("${pp[@]}" pod inspect bench -o json)
		sup=$(jq -r .peapod.supervisorPid <<<"$info") pause=$(jq -r .peapod.pausePid <<<"$info")
		pp_pss=$(pss "/proc/$sup/smaps_rollup" "/proc/$pause/smaps_rollup")
	fi
	"${pp[@]}" pod rm -f bench >/dev/null

	t=$(date +%s%N)
	"${pm[@]}" pod create --name bench --cgroup-parent "$cgparent" >/dev/null
	for c in a b c; do "${pm[@]}" run -d --pod bench --name "bench-$c" localhost/ppbb sleep 1000 >/dev/null; done
	ms "$t" >>"$work/t-podman"
	if [ "$i" = 1 ]; then
		mapfile -t pids < <(pgrep -f "conmon.*$work" || true; pgrep -x catatonit || true)
		files=()
		for p in "${pids[@]}"; do files+=("/proc/$p/smaps_rollup"); done
		pm_pss=$(pss "${files[@]}") pm_procs=${#pids[@]}
	fi
	"${pm[@]}" pod rm -f --time 0 bench >/dev/null
done
a=$(median <"$work/t-peapod") b=$(median <"$work/t-podman")
echo "pod-start: $n runs of a 3-container pod to Running, $(nproc) CPUs"
printf '%-8s %10s %12s\n' runtime "median ms" "per-pod PSS"
printf '%-8s %10s %8s KiB   (supervisor + pause)\n' peapod "$a" "$pp_pss"
printf '%-8s %10s %8s KiB   (%s conmon and catatonit processes)\n' podman "$b" "$pm_pss" "$pm_procs"
awk -v a="$a" -v b="$b" 'BEGIN { printf "ratio peapod/podman: %.3f\n", a / b }'

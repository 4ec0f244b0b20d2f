#!/usr/bin/env bash
# Container start-up benchmark: peapod against runc (and crun where it works) on one busybox bundle.
set -euo pipefail

usage() {
	cat <<EOF
usage: ${0##*/} [-n N] [-w W] [-m M] [-M] [RUNTIME...]

Times N sequential containers of /bin/true on the same busybox bundle (process.terminal false, one
reused cgroup path) for each RUNTIME, in two ways, after W untimed warm-up containers:
  run     RUNTIME run ID                 (create, start, wait, and delete when /bin/true exits)
  cycle   RUNTIME create ID; RUNTIME start ID; RUNTIME delete --force ID
and prints the median and mean wall time per container, and the ratio of each median to runc's.
Memory, median of M containers: the peak RSS of the runtime's own process during \`create\` (GNU time's
maximum resident set size, as /usr/bin/time -v reports it), the peak RSS of the container's init
process while it waits for \`start\` (VmHWM), and the container cgroup's peak memory charge then.

RUNTIME is peapod, peapod-runc (the OCI verbs only, one static executable: \$PEAPOD_RUNC, default
target/x86_64-unknown-linux-gnu/release/peapod-runc, built with \`cargo build-runc\` when missing),
peapod-ro (peapod copied onto a read-only bind mount, as an installation on a
read-only /usr would be: it then skips its protective re-execution), runc, crun or the path of a
runc-compatible binary (default: peapod runc crun).
peapod is \$PEAPOD, default target/release/peapod of this repository, built with
\`cargo build --release\` when missing. A runtime that is not installed, or whose first container
fails, is reported as skipped with its error: Debian's crun refuses hybrid cgroups (the host), so
it only runs in the VM (rootfs-tools/vm-run -- bench/oci-start.sh).

  -n N   timed containers per runtime and way (default 100)
  -w W   warm-up containers per runtime (default 5)
  -m M   containers sampled for memory (default 5; 0 skips memory)
  -M     print the result as a markdown table (the README's Performance tables are this output)

Needs root, jq, and /usr/bin/time (package time) for the create RSS figure. The bundle's config is
\`runc spec\` (or \`peapod spec\` without runc) with args, terminal, rlimits and cgroupsPath set, and
no ambient capabilities.
Everything lives in a temp dir that is removed at exit, with any container left and its cgroup.
EOF
}

n=100 warmup=5 mem=5 markdown=0
while getopts ':n:w:m:Mh' opt; do
	case $opt in
	n) n=$OPTARG ;;
	w) warmup=$OPTARG ;;
	m) mem=$OPTARG ;;
	M) markdown=1 ;;
	h) usage && exit 0 ;;
	*) usage >&2 && exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ "${1:-}" = --help ] && usage && exit 0
for v in "$n" "$warmup" "$mem"; do
	[[ $v =~ ^[0-9]+$ ]] || { echo "${0##*/}: not a number: $v" >&2 && usage >&2 && exit 2; }
done
[ "$n" -gt 0 ] || { echo "${0##*/}: -n must be at least 1" >&2 && exit 2; }
[ "$(id -u)" = 0 ] || { echo "${0##*/}: run as root" >&2 && exit 2; }
command -v jq >/dev/null || { echo "${0##*/}: needs jq (apt-get install jq)" >&2 && exit 2; }
[ $# -gt 0 ] || set -- peapod runc crun

repo=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
work=$(mktemp -d /tmp/pp-bench.XXXXXX)
cg=/pp-bench-$$
states=() # "binary state-dir" pairs, for the cleanup

cleanup() {
	local pair bin state c d
	for pair in "${states[@]}"; do
		bin=${pair%% *} state=${pair#* }
		for c in "$state"/*; do
			if [ -e "$c" ]; then "$bin" --root "$state" delete --force "${c##*/}" >/dev/null 2>&1 || true; fi
		done
	done
	for d in /sys/fs/cgroup"$cg" /sys/fs/cgroup/*"$cg"; do
		if [ -d "$d" ]; then rmdir "$d" 2>/dev/null || true; fi
	done
	if mountpoint -q "$work/ro" 2>/dev/null; then umount "$work/ro" || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "${0##*/}: $*" >&2
	exit 1
}

# Wall clock in microseconds, without forking (bash 5).
now_us() {
	local t=${EPOCHREALTIME/[.,]/}
	echo "$((10#$t))"
}

# stdin: numbers -> "median mean", both divided by $1.
stats() {
	sort -n | awk -v d="$1" '{ v[NR] = $1; s += $1 }
		END { if (NR == 0) { print "- -"; exit }
		      m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		      printf "%.2f %.2f\n", m / d, s / NR / d }'
}

resolve() { # NAME -> path of the binary, or empty
	case $1 in
	peapod)
		local p=${PEAPOD:-$repo/target/release/peapod}
		if [ ! -x "$p" ] && [ -z "${PEAPOD:-}" ]; then
			echo "building peapod (cargo build --release)..." >&2
			cargo build --release --quiet --manifest-path "$repo/Cargo.toml" >&2 || return 0
		fi
		if [ -x "$p" ]; then echo "$p"; fi
		;;
	peapod-runc)
		# the lean OCI-only binary that containerd and podman point at, static (cargo build-runc)
		local p=${PEAPOD_RUNC:-$repo/target/x86_64-unknown-linux-gnu/release/peapod-runc}
		if [ ! -x "$p" ] && [ -z "${PEAPOD_RUNC:-}" ]; then
			echo "building peapod-runc (cargo build-runc)..." >&2
			(cd "$repo" && cargo build-runc --quiet) >&2 || return 0
		fi
		if [ -x "$p" ]; then echo "$p"; fi
		;;
	peapod-ro)
		# peapod installed on a read-only mount: it then needs no protected re-execution
		# (CVE-2019-5736), see README "Performance".
		local p
		p=$(resolve peapod)
		[ -n "$p" ] || return 0
		mkdir -p "$work/ro" && cp "$p" "$work/ro/peapod" || return 0
		mount --bind "$work/ro" "$work/ro" && mount -o remount,bind,ro "$work/ro" "$work/ro" || return 0
		echo "$work/ro/peapod"
		;;
	*/*) if [ -x "$1" ]; then echo "$1"; fi ;;
	*) command -v "$1" || true ;;
	esac
}

# The bundle: one busybox rootfs and config for every runtime and container.
bundle=$work/bundle
mkdir -p "$bundle"
"$repo/rootfs-tools/busybox-rootfs" "$bundle/rootfs" >&2
spec_bin=$(command -v runc || resolve peapod)
[ -n "$spec_bin" ] || { echo "${0##*/}: neither runc nor peapod to write config.json" >&2 && exit 1; }
(cd "$bundle" && "$spec_bin" spec)
# runc's template asks for ambient capabilities that are not inheritable, which the kernel refuses:
# runc 1.1 skips them silently, peapod fails. Drop them: the container gets the same (no ambient caps).
jq --arg cg "$cg" '.process.terminal = false | .process.args = ["/bin/true"] | .root.readonly = true
	| del(.process.capabilities.ambient)
	| .process.rlimits = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
	| .hostname = "bench" | .linux.cgroupsPath = $cg' "$bundle/config.json" >"$work/config.json"
mv "$work/config.json" "$bundle/config.json"

cgroup_peak_kib() { # peak memory charged to the container cgroup, KiB ("-" when unknown)
	local f
	for f in /sys/fs/cgroup"$cg"/memory.peak /sys/fs/cgroup/memory"$cg"/memory.max_usage_in_bytes; do
		[ -r "$f" ] && echo $(($(<"$f") / 1024)) && return
	done
	echo -
}

mem_med() { # KiB samples -> their median, or "-"
	if [ $# -gt 0 ] && [ "$1" != - ]; then printf '%s\n' "$@" | stats 1 | awk '{ printf "%.0f\n", $1 }'; else echo -; fi
}

# Probe each runtime with one container: skipped when missing or when that fails.
order=() labels=()
declare -A bin_of skipped_of median_of mem_of
for name in "$@"; do
	label=${name##*/}
	order+=("$label")
	bin=$(resolve "$name")
	if [ -z "$bin" ]; then
		skipped_of[$label]="not installed"
		continue
	fi
	mkdir -p "$work/state-$label"
	states+=("$bin $work/state-$label")
	if ! "$bin" --root "$work/state-$label" run --bundle "$bundle" "pp-bench-$$-$label-probe" </dev/null >/dev/null 2>"$work/err"; then
		skipped_of[$label]=$(grep -m1 . "$work/err" || echo "its first container failed")
		continue
	fi
	bin_of[$label]=$bin
	labels+=("$label")
	echo "$label: $bin" >&2
done

rt() { # LABEL ARGS...: the runtime with its own state dir
	local label=$1
	shift
	"${bin_of[$label]}" --root "$work/state-$label" "$@"
}
one_run() { rt "$1" run --bundle "$bundle" "$2" </dev/null >/dev/null; }
one_cycle() {
	rt "$1" create --bundle "$bundle" "$2" </dev/null >/dev/null && rt "$1" start "$2" && rt "$1" delete --force "$2"
}

# Interleaved, in a rotating order: container i of every runtime before container i+1 of any,
# so that whatever else the machine does at the time hits every runtime alike.
count=${#labels[@]}
for ((i = 0; i < warmup; i++)); do
	for l in "${labels[@]}"; do one_run "$l" "pp-bench-$$-$l-w$i" || fail "$l: warm-up container $i failed"; done
done
for way in run cycle; do
	for ((i = 0; i < n; i++)); do
		for ((k = 0; k < count; k++)); do
			l=${labels[(i + k) % count]}
			t0=$(now_us)
			"one_$way" "$l" "pp-bench-$$-$l-$way$i" || fail "$l: $way of container $i failed"
			t1=$(now_us)
			echo $((t1 - t0)) >>"$work/$way-$l"
		done
	done
done

for l in "${labels[@]}"; do
	read -r run_med run_mean < <(stats 1000 <"$work/run-$l")
	read -r cyc_med cyc_mean < <(stats 1000 <"$work/cycle-$l")
	median_of[$l]="$run_med $cyc_med $run_mean $cyc_mean"
	rss=() init=() peak=()
	for ((i = 0; i < mem; i++)); do
		c=pp-bench-$$-$l-m$i
		if [ -x /usr/bin/time ]; then
			/usr/bin/time -f %M -o "$work/rss" "${bin_of[$l]}" --root "$work/state-$l" create --bundle "$bundle" "$c" </dev/null >/dev/null
			rss+=("$(tail -n1 "$work/rss")")
		else
			rt "$l" create --bundle "$bundle" "$c" </dev/null >/dev/null
		fi
		pid=$(rt "$l" state "$c" | jq -r .pid)
		init+=("$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)")
		peak+=("$(cgroup_peak_kib)")
		rt "$l" delete --force "$c"
	done
	mem_of[$l]="$(mem_med "${rss[@]}") $(mem_med "${init[@]}") $(mem_med "${peak[@]}")"
done

ratio() { # runtime's median / the median of runtime $3 (default runc), for field $2 (1 run, 2 cycle)
	local base mine
	base=$(cut -d' ' -f"$2" <<<"${median_of[${3:-runc}]:-}")
	mine=$(cut -d' ' -f"$2" <<<"${median_of[$1]:-}")
	if [ -n "$base" ] && [ -n "$mine" ]; then awk -v a="$mine" -v b="$base" 'BEGIN { printf "%.2fx", a / b }'; else echo -; fi
}

if [ -r /sys/fs/cgroup/cgroup.controllers ]; then cgmode="cgroup v2"; else cgmode="cgroup v1/hybrid"; fi
title="oci-start: $n containers of /bin/true per runtime and way (interleaved), $warmup warm-up; $(uname -r), $(nproc) CPUs, $cgmode"
if [ "$markdown" = 1 ]; then
	echo
	echo "$title"
	echo
	echo "| runtime | run median | /runc | /crun | cycle median | /runc | /crun | create RSS | init RSS | cgroup peak |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for l in "${order[@]}"; do
		if [ -n "${skipped_of[$l]:-}" ]; then
			echo "| $l | skipped: ${skipped_of[$l]//|/\\|} | | | | | | | | |"
			continue
		fi
		read -r run_med cyc_med run_mean cyc_mean <<<"${median_of[$l]}"
		read -r rss init peak <<<"${mem_of[$l]}"
		echo "| $l | $run_med ms | $(ratio "$l" 1) | $(ratio "$l" 1 crun) | $cyc_med ms | $(ratio "$l" 2) | $(ratio "$l" 2 crun) | $rss KiB | $init KiB | $peak KiB |"
	done
	[ "$count" -gt 0 ]
	exit
fi
echo
echo "$title"
printf '%-8s %10s %9s %8s %12s %10s %8s %12s %10s %12s\n' runtime "run med" mean "/runc" "cycle med" mean "/runc" \
	"create RSS" "init RSS" "cgroup peak"
printf '%-8s %10s %9s %8s %12s %10s %8s %12s %10s %12s\n' "" ms ms "" ms ms "" KiB KiB KiB
for l in "${order[@]}"; do
	if [ -n "${skipped_of[$l]:-}" ]; then
		printf '%-8s skipped: %s\n' "$l" "${skipped_of[$l]}"
		continue
	fi
	read -r run_med cyc_med run_mean cyc_mean <<<"${median_of[$l]}"
	read -r rss init peak <<<"${mem_of[$l]}"
	printf '%-8s %10s %9s %8s %12s %10s %8s %12s %10s %12s\n' "$l" "$run_med" "$run_mean" "$(ratio "$l" 1)" \
		"$cyc_med" "$cyc_mean" "$(ratio "$l" 2)" "$rss" "$init" "$peak"
done
[ "$count" -gt 0 ]

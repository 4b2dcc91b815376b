#!/usr/bin/env bash
# What confinement costs a start: RUNS starts of /bin/true directly, then as
# many through `sdss lab-box` (cgroups, namespaces, the box's root with a
# small folder copied in, the user, the filter, and the cleanup after), both
# in a private network namespace made here, as a lab node would be. Prints the
# milliseconds per start of each and the difference, for the whole life (start,
# exit, cleanup) and up to the program running (`date +%s%N` prints when it
# ran). Figures, not a pass/fail.
#
#   scripts/bench-box-start.sh [SDSS_BINARY (default target/release/sdss)] [RUNS (default 50)]
# Needs root.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."

# Milliseconds per run of the command, over $runs runs.
per_start() {
  local start end i
  start=$(date +%s%N)
  for ((i = 0; i < runs; i++)); do "$@" || { echo "bench-box-start.sh: $* failed" >&2; exit 1; }; done
  end=$(date +%s%N)
  awk -v ns=$((end - start)) -v n="$runs" 'BEGIN { printf "%.2f", ns / 1e6 / n }'
}

# Median milliseconds from the spawn to the program's first instruction of
# its own: the program is `date +%s%N`, which prints when it ran.
to_exec() {
  local i t0 t1
  for ((i = 0; i < runs; i++)); do
    t0=${EPOCHREALTIME/./}
    t1=$("$@")
    echo $(((t1 / 1000) - t0))
  done | sort -n | awk '{ a[NR] = $1 } END { printf "%.2f", a[int((NR + 1) / 2)] / 1000 }'
}

# In the private network namespace: both measurements, side by side.
if [[ "${1:-}" == "--inside" ]]; then
  sdss=$2 spec=$3 runs=$4 dated=$5
  ip link set lo up
  "$sdss" lab-box "$spec" # warm the caches
  direct=$(per_start /bin/true)
  boxed=$(per_start "$sdss" lab-box "$spec")
  direct_exec=$(to_exec /bin/date +%s%N)
  boxed_exec=$(to_exec "$sdss" lab-box "$dated")
  diff() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
  printf "%-44s %10s %14s %8s\n" "" "unconfined" "sdss lab-box" "more"
  printf "%-44s %10s %14s %8s\n" "start to exit and cleanup, ms (mean of $runs)" \
    "$direct" "$boxed" "$(diff "$boxed" "$direct")"
  printf "%-44s %10s %14s %8s\n" "start to the program running, ms (median)" \
    "$direct_exec" "$boxed_exec" "$(diff "$boxed_exec" "$direct_exec")"
  exit 0
fi

sdss=$(realpath "${1:-target/release/sdss}")
runs=${2:-50}
if [[ $EUID -ne 0 ]]; then
  echo "bench-box-start.sh: needs root (cgroups and namespaces)" >&2
  exit 1
fi
[[ -x "$sdss" ]] || { echo "bench-box-start.sh: no executable $sdss (cargo build --release)" >&2; exit 1; }

work=$(mktemp -d /tmp/sdss-bench-box.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/folder"
printf 'print("a submission")\n' >"$work/folder/node.py"
head -c 100000 /dev/urandom >"$work/folder/data.bin"
cat >"$work/spec.json" <<JSON
{"node": "bench", "argv": ["/bin/true"], "env": [], "folder": "$work/folder",
 "cwd": "$work/folder", "user": {"uid": 65519, "gid": 65519},
 "limits": {"memory": 536870912, "tasks": 256, "cpu": 1.0, "files": 1024,
            "file_size": 67108864, "disk": 67108864},
 "cgroup": "sdss-boxbench-$$", "hits": "$work/hits.jsonl"}
JSON

sed 's#"argv": \["/bin/true"\]#"argv": ["/bin/date", "+%s%N"]#' "$work/spec.json" >"$work/dated.json"
unshare --net -- "$self" --inside "$sdss" "$work/spec.json" "$runs" "$work/dated.json"
if [[ -s "$work/hits.jsonl" ]]; then
  echo "limits were hit:" >&2
  cat "$work/hits.jsonl" >&2
fi

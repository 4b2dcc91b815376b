#!/usr/bin/env bash
# What confinement costs a start: RUNS starts of /bin/true directly, then as
# many through `sdss lab-box` (cgroups, namespaces, the box's root with a
# small folder copied in, the user, the filter, and the cleanup after), both
# in a private network namespace made here, as a lab node would be. Prints the
# milliseconds per start of each and the difference. Figures, not a pass/fail.
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

# In the private network namespace: both measurements, side by side.
if [[ "${1:-}" == "--inside" ]]; then
  sdss=$2 spec=$3 runs=$4
  ip link set lo up
  "$sdss" lab-box "$spec" # warm the caches
  direct=$(per_start /bin/true)
  boxed=$(per_start "$sdss" lab-box "$spec")
  printf "%-24s %8s ms per start\n" "/bin/true" "$direct" "sdss lab-box /bin/true" "$boxed"
  printf "%-24s %8s ms\n" "confinement costs" "$(awk -v a="$boxed" -v b="$direct" 'BEGIN { printf "%.2f", a - b }')"
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

unshare --net -- "$self" --inside "$sdss" "$work/spec.json" "$runs"
if [[ -s "$work/hits.jsonl" ]]; then
  echo "limits were hit:" >&2
  cat "$work/hits.jsonl" >&2
fi

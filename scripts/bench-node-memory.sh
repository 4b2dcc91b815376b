#!/usr/bin/env bash
# A node's memory with 50 peers: for each subject, 50 simulated peers
# (scripts/bench/peers.py: one process, each peer its own 127.0.1.x address,
# announcing every second, serving "!d" times, measuring the subject every 10
# of its broadcasts) run on loopback with the subject, inside a private
# network, mount and PID namespace; nothing can leave the machine, and every
# announcement goes to 127.255.255.255. Once the subject's own output says its
# table holds every peer (and the peers say it measured each of them), the
# subject runs --settle seconds more (a full refresh round), then its memory
# is read from /proc/PID/status: VmRSS, RssAnon, RssFile, VmHWM, threads,
# and RssFile split by /proc/PID/smaps between the executable and the shared
# libraries.
#
# Subjects: each sdss binary given (default target/release/sdss, built first),
# then the assignment's node in Python (tests/interop/dialect_binary.py on
# tests/interop/seed_node.py: the skeleton's threads, "!d" server-first).
#
#   scripts/bench-node-memory.sh [--peers N] [--settle SECONDS] [[LABEL=]SDSS_BINARY ...]
# Needs root and python3. Figures, not a pass/fail.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."

peers=50
settle=12
inside=0
subjects=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --inside-sandbox) inside=1 ;;
    --peers) peers="$2"; shift ;;
    --settle) settle="$2"; shift ;;
    -*) echo "usage: $0 [--peers N] [--settle SECONDS] [[LABEL=]SDSS_BINARY ...]" >&2; exit 2 ;;
    *=*) subjects+=("${1%%=*}=$(realpath "${1#*=}")") ;;
    *) subjects+=("$(basename "$1")=$(realpath "$1")") ;;
  esac
  shift
done

if [[ $inside -eq 0 ]]; then
  [[ $EUID -eq 0 ]] || { echo "bench-node-memory: needs root (network and PID namespaces)" >&2; exit 1; }
  command -v python3 >/dev/null || { echo "bench-node-memory: python3 missing" >&2; exit 1; }
  if [[ ${#subjects[@]} -eq 0 ]]; then
    cargo build --release --quiet
    subjects=("sdss=$PWD/target/release/sdss")
  fi
  for s in "${subjects[@]}"; do
    [[ -x ${s#*=} ]] || { echo "bench-node-memory: ${s#*=} is not an executable" >&2; exit 1; }
  done
  # A PID namespace too: when this script ends, whatever it started dies with it.
  exec unshare --net --mount --pid --fork --mount-proc --propagation private -- \
    bash "$self" --inside-sandbox --peers "$peers" --settle "$settle" "${subjects[@]}"
fi

ip link set lo up # 127.0.1.x need nothing more: all of 127/8 is local on lo
# Belt and braces: this namespace has lo only; refuse to run if it has more.
if ip -o link show | grep -qv ': lo:'; then
  echo "bench-node-memory: the sandbox has an interface other than lo; refusing" >&2; exit 1
fi
work=$(mktemp -d /tmp/sdss-memory.XXXXXX)
pids=()
cleanup() {
  trap - EXIT INT TERM
  if [[ ${#pids[@]} -gt 0 ]]; then kill -KILL "${pids[@]}" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Counts the peers the subject's output says it holds: sdss --json `neighbor`
# lines minus `removed`, the Python node's `measured` lines minus `removed`.
table_size() {
  python3 - "$1" <<'PY'
import json, sys
ids = set()
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    kind, peer = e.get("event"), e.get("id") or e.get("peer")
    if kind in ("neighbor", "measured"):
        ids.add(peer)
    elif kind == "removed":
        ids.discard(peer)
print(len(ids))
PY
}
# The subject's memory: "rss anon file hwm threads exe libs" in KiB (threads a
# count); exe and libs split the file pages between the executable's own
# mappings and the shared libraries' (/proc/PID/smaps).
memory() {
  local exe
  exe=$(readlink "/proc/$1/exe")
  echo "$(awk '/^VmRSS:/{r=$2} /^RssAnon:/{a=$2} /^RssFile:/{f=$2} /^VmHWM:/{h=$2} /^Threads:/{t=$2}
       END{print r, a, f, h, t}' "/proc/$1/status")" \
    "$(awk -v exe="$exe" '/^[0-9a-f]+-[0-9a-f]+ /{name=$6} /^Rss:/{if (name == exe) e+=$2; else if (name ~ /\.so/) l+=$2}
       END{print e+0, l+0}' "/proc/$1/smaps")"
}

results=()
run_subject() {
  local label=$1
  shift
  local dir=$work/$label bport=$((30000 + RANDOM % 20000))
  mkdir -p "$dir"
  python3 scripts/bench/peers.py --count "$peers" --port "$bport" >"$dir/peers.out" 2>"$dir/peers.err" &
  local sim=$!
  pids+=("$sim")
  "$@" "$bport" >"$dir/node.json" 2>"$dir/node.err" &
  local node=$!
  pids+=("$node")
  local start=$EPOCHREALTIME size=0 served=0
  for _ in $(seq 600); do # at most 60 s
    kill -0 "$node" 2>/dev/null || { echo "bench-node-memory: $label exited:" >&2; tail -5 "$dir/node.err" >&2; exit 1; }
    size=$(table_size "$dir/node.json")
    served=$(tail -n1 "$dir/peers.out" | awk '{print $2+0}')
    ((size >= peers && served >= peers)) && break
    sleep 0.1
  done
  ((size >= peers)) || { echo "bench-node-memory: $label holds $size of $peers peers after 60 s" >&2; exit 1; }
  local full
  full=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b - a}')
  sleep "$settle"
  size=$(table_size "$dir/node.json")
  read -r rss anon file hwm threads exe libs < <(memory "$node")
  results+=("$label $rss $anon $file $exe $libs $hwm $threads $size $full")
  kill -TERM "$node" "$sim" 2>/dev/null || true
  wait "$node" "$sim" 2>/dev/null || true
}

# The port is the last argument each command gets (single quotes on purpose).
# shellcheck disable=SC2016
for s in "${subjects[@]}"; do
  bin=${s#*=}
  run_subject "${s%%=*}" bash -c 'exec "$0" node --json -d 127.255.255.255 --broadcast-port "$1"' "$bin"
done
# shellcheck disable=SC2016
run_subject python-seed bash -c 'exec python3 tests/interop/dialect_binary.py \
  --destination 127.255.255.255 --duration 3600 --port "$0"'

echo "one node with $peers peers on loopback, read ${settle}s after its table was full (KiB; $(nproc) cores)"
echo "(exe, libs: every resident page of the executable's mappings, of the shared libraries'; their written pages count in anon too)"
printf '%-16s %8s %8s %8s %8s %8s %8s %8s %6s %9s\n' subject rss anon file exe libs peak threads table full-in-s
for r in "${results[@]}"; do
  read -r label rss anon file exe libs hwm threads size full <<<"$r"
  printf '%-16s %8s %8s %8s %8s %8s %8s %8s %6s %9s\n' "$label" "$rss" "$anon" "$file" "$exe" "$libs" "$hwm" "$threads" "$size" "$full"
done

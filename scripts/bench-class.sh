#!/usr/bin/env bash
# A class of N submissions (copies of the fixtures of tests/grade/, in turn)
# graded by `sdss lab grade --class` twice with one seed: with the default
# jobs (what the machine carries, derived), then one lab at a time. Prints
# each run's wall time side by side and every submission's verdicts
# compared check by check: a class run must be faster and change nothing.
#
#   scripts/bench-class.sh [--submissions N] [SDSS]
# N defaults to 24; SDSS to target/release/sdss. Needs root. One at a time
# takes about 30 s per submission (12 minutes for 24).
set -euo pipefail
cd "$(dirname "$0")/.."
count=24
while (($#)); do
  case $1 in
    --submissions) count=$2; shift 2 ;;
    -*) echo "usage: $0 [--submissions N] [SDSS]" >&2; exit 2 ;;
    *) break ;;
  esac
done
bin=$(realpath "${1:-target/release/sdss}")
[[ $EUID -eq 0 ]] || { echo "bench-class: needs root (labs are network namespaces)" >&2; exit 2; }
[[ -x $bin ]] || { echo "bench-class: no $bin: cargo build --release first" >&2; exit 2; }

work=$(mktemp -d /tmp/bench-class.XXXXXX)
trap 'rm -rf "$work"' EXIT
fixtures=(correct.py fault_float32.py fault_local_time.py fault_every_broadcast.py fault_fixed_port.py
  fault_wrong_port.py fault_client_first.py fault_busy_loop.py fault_self_connect.py fault_destination.py)
for ((i = 0; i < count; i++)); do
  f=${fixtures[i % ${#fixtures[@]}]}
  dir=$work/class/$(printf 's%02d_%s' "$i" "${f%.py}")
  mkdir -p "$dir"
  cp tests/grade/correct.py "$dir/correct.py"
  cp "tests/grade/$f" "$dir/solution.py"
done

seed=$RANDOM
run() { # NAME JOBS...
  local name=$1
  shift
  local start=$SECONDS
  "$bin" lab grade --class "$work/class" --seed "$seed" --name "bc$$$name" \
    --results "$work/$name" --csv "$work/$name.csv" "$@" >"$work/$name.out" 2>"$work/$name.err" ||
    { echo "bench-class: the $name run failed:" >&2; tail -5 "$work/$name.err" >&2; exit 1; }
  echo $((SECONDS - start)) >"$work/$name.secs"
}
echo "bench-class: $count submissions, seed $seed, $(nproc) cores, $bin"
run default
run single --jobs 1
jobs=$(sed -n 's/.* \([0-9]*\) at once.*/\1/p' "$work/default.err" | head -1)
python3 - "$work" "$jobs" <<'PY'
import csv, sys
work, jobs = sys.argv[1], sys.argv[2]
def rows(name):
    with open(f"{work}/{name}.csv") as f:
        return {r["submission"]: r for r in csv.DictReader(f)}
a, b = rows("default"), rows("single")
secs = {n: int(open(f"{work}/{n}.secs").read()) for n in ("default", "single")}
print(f"{'':24}{'default (' + jobs + ' at once)':>22}{'one at a time':>16}")
print(f"{'wall time':24}{secs['default']:>20} s{secs['single']:>14} s")
print(f"{'speed-up':24}{secs['single'] / max(secs['default'], 1):>21.2f}x")
differ = 0
for name in sorted(a):
    checks = [k for k in a[name] if "." in k]
    diff = [k for k in checks if a[name][k] != b[name].get(k)]
    differ += bool(diff)
    print(f"{name:24}{a[name]['percent']:>21}%{b[name]['percent']:>15}%  {'equal' if not diff else 'DIFFER: ' + ' '.join(diff)}")
print(f"verdicts: {len(a) - differ} of {len(a)} submissions equal on every check")
sys.exit(1 if differ else 0)
PY

#!/usr/bin/env bash
# How long a timeline's link changes take to apply on netem: two sdss
# binaries side by side (a baseline and a candidate) on the same lab, in a VM
# with Debian's kernel (this machine's has no netem; scripts/vm.sh), then the
# candidate alone on a large lab.
#
# The lab: N nodes (every link 2 ms, nodes that only sleep: what is timed is
# tc, not the nodes) whose timeline cuts a node, heals it, splits the lab in
# two halves and heals it. Each binary runs it with `lab run --delay-backend
# netem --json`; each event's "links changed in" figure (the report's
# took_ms) prints beside the other binary's, with their ratio, and the time
# the build took.
#
#   scripts/bench-link-change.sh [--no-install] [--nodes N] [--large M] BASELINE CANDIDATE
# N defaults to 12 (a baseline that runs one tc per command builds it in about
# a minute under the VM's emulation) and M to 100 (the candidate alone).
# Needs root. About 5 minutes, plus installing what vm-netem.sh needs.
set -euo pipefail
cd "$(dirname "$0")/.."
self=$PWD/scripts/bench-link-change.sh

# A lab of $1 sleeping nodes named $2 whose timeline cuts, heals, splits and heals.
lab_file() {
  local nodes=$1 name=$2 half=$(($1 / 2)) i
  # Sleeping nodes measure nothing: the least samples, so that the first
  # event may come at 8 s (the phase before it has nothing to judge).
  printf 'name = "%s"\n[sandbox]\nenabled = false\n[defaults]\ndelay = "2ms"\ninterval = "250ms"\n[verify]\ntime_limit = "40s"\nsamples = 1\nwarmup = 0\n' "$name"
  for i in $(seq "$nodes"); do
    printf '[[node]]\nname = "n%d"\ncommand = ["sleep", "600"]\njson = true\n' "$i"
  done
  local left right
  left=$(seq -s, -f '"n%g"' 1 "$half") right=$(seq -s, -f '"n%g"' $((half + 1)) "$nodes")
  printf '[[event]]\nname = "cut"\nat = "8s"\naction = "cut"\nnode = "n1"\n'
  printf '[[event]]\nname = "heal"\nat = "14s"\naction = "heal"\nnode = "n1"\n'
  printf '[[event]]\nname = "split"\nat = "20s"\naction = "partition"\ngroups = [[%s], [%s]]\n' "$left" "$right"
  printf '[[event]]\nname = "join"\nat = "28s"\naction = "heal"\n'
}

if [[ "${1:-}" == "--inside-vm" ]]; then
  out=$2
  shift 2 # then RUN=BINARY:LAB for each run
  modprobe sch_netem
  mkdir -p /run/netns /run/sdss
  for run in "$@"; do
    name=${run%%=*} rest=${run#*=}
    start=$(date +%s.%N)
    unshare --net --mount --propagation private -- sh -c '
      mount -t tmpfs -o mode=0755 bench-netns /run/netns &&
      mount -t tmpfs -o mode=0700 bench-state /run/sdss && ip link set lo up &&
      exec "$1" lab run "$2" --delay-backend netem --json' sh "${rest%%:*}" "${rest#*:}" \
      >"$out/$name.json" 2>"$out/$name.err" || true
    echo "$start $(date +%s.%N)" >"$out/$name.time"
  done
  exit 0
fi

install=1 nodes=12 large=100 bins=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-install) install=0 ;;
    --nodes) nodes=$2; shift ;;
    --large) large=$2; shift ;;
    -*) echo "usage: $0 [--no-install] [--nodes N] [--large M] BASELINE CANDIDATE" >&2; exit 2 ;;
    *) bins+=("$(realpath "$1")") ;;
  esac
  shift
done
[[ ${#bins[@]} -eq 2 ]] || { echo "usage: $0 [--no-install] [--nodes N] [--large M] BASELINE CANDIDATE" >&2; exit 2; }
[[ $EUID -eq 0 ]] || { echo "bench-link-change: needs root (apt, modules, namespaces in the VM)" >&2; exit 2; }
for bin in "${bins[@]}"; do
  [[ -x $bin ]] || { echo "bench-link-change: no sdss binary at $bin" >&2; exit 2; }
done
source "$PWD/scripts/vm.sh"
vm_prepare bench-link-change "$install"

lab_file "$nodes" bench > "$work/out/small.toml"
lab_file "$large" bench > "$work/out/large.toml"
runs=("baseline=${bins[0]}:$work/out/small.toml" "candidate=${bins[1]}:$work/out/small.toml"
  "large=${bins[1]}:$work/out/large.toml")
echo "bench-link-change: kernel $kver; $nodes nodes with each binary, then $large with the candidate"
status=0
vm_boot 1200 "$(printf '%q ' "$self" --inside-vm "$work/out" "${runs[@]}")" || status=$?
((status == 0)) || { tail -20 "$work/vm.log" >&2; echo "bench-link-change: the VM failed (exit $status)" >&2; exit 1; }

python3 - "$work/out" "$nodes" "$large" "${bins[@]}" <<'PY'
import json, sys
out, nodes, large, baseline, candidate = sys.argv[1:6]

def played(name):
    """(build seconds, {event: took ms}) of one run, or why it has none."""
    try:
        report = json.load(open(f"{out}/{name}.json"))
    except (OSError, ValueError) as e:
        err = open(f"{out}/{name}.err").read()[-1500:] if name else ""
        sys.exit(f"bench-link-change: {name}: no report ({e})\n{err}")
    err = open(f"{out}/{name}.err").read()
    build = next((l.split(" up in ")[1].split(" s")[0] for l in err.splitlines() if " up in " in l), "?")
    took = {p["what"]: p.get("took_ms") for p in report["timeline"]["played"]}
    errors = [p["error"] for p in report["timeline"]["played"] if p.get("error")]
    return build, took, errors

base, cand, big = played("baseline"), played("candidate"), played("large")
print(f"baseline:  {baseline}\ncandidate: {candidate}")
print(f"{nodes} nodes, per-pair netem leaves; the time each change took to apply:")
print(f"{'event':<34}{'baseline ms':>12}{'candidate ms':>14}{'ratio':>8}")
print(f"{'(build: up in, s)':<34}{base[0]:>12}{cand[0]:>14}")
for what in base[1]:
    b, c = base[1].get(what), cand[1].get(what)
    ratio = f"{b / c:.1f}x" if b and c else "-"
    show = lambda v: f"{v:.1f}" if v is not None else "-"
    print(f"{what[:33]:<34}{show(b):>12}{show(c):>14}{ratio:>8}")
print(f"{large} nodes, the candidate alone (up in {big[0]} s):")
for what, took in big[1].items():
    print(f"  {what[:60]:<62}{took if took is None else f'{took:.1f} ms'}")
for name, run in (("baseline", base), ("candidate", cand), ("large", big)):
    for e in run[2]:
        print(f"bench-link-change: {name}: an event failed: {e}")
PY

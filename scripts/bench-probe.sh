#!/usr/bin/env bash
# What the link probe measures of each netem shape against what was asked,
# on the userspace emulator (here) and on netem (in a VM with Debian's
# kernel: this machine's has no netem; scripts/vm.sh), side by side.
#
# The lab: a plain sender `a` and one receiver per shape, each receiver's
# link holding only its shape, so the pair a -> receiver shows that shape
# alone. Its nodes sleep (what is measured is the links, not SDSS traffic).
# Each backend runs `lab up --no-verify`, then `lab probe --from a --json`,
# then `lab down`; a table prints each judged figure: asked, and measured
# with its verdict on each backend.
#
#   scripts/bench-probe.sh [--no-install] [--no-vm] [--rate N] [--duration D] [SDSS]
# SDSS defaults to target/release/sdss. Needs root. About 4 minutes with the VM.
set -euo pipefail
cd "$(dirname "$0")/.."
self=$PWD/scripts/bench-probe.sh

# Each receiver's name and its link's shape (TOML keys).
shapes=(
  'plain|delay = "30ms"'
  'uniform|delay = "30ms"\njitter = "3ms"'
  'normal|delay = "30ms"\njitter = "3ms"\ndistribution = "normal"'
  'lossy|delay = "30ms"\nloss = 0.05'
  'corrloss|delay = "30ms"\nloss = 0.3\nloss_correlation = 0.25'
  'gemodel|delay = "30ms"\nloss_model = { gemodel = [0.02, 0.3, 1.0, 0.0] }'
  'fourstate|delay = "30ms"\nloss_model = { state = [0.01, 0.5, 0.0, 1.0, 0.01] }'
  'dup|delay = "30ms"\nduplicate = 0.05'
  'reordered|delay = "35ms"\nreorder = 0.2\nreorder_gap = 3'
  'corrupt|delay = "30ms"\ncorrupt = 0.05'
  'slow|delay = "30ms"\nrate = "50kbit"\nlimit = 20'
  'together|delay = "30ms"\nloss = 0.02\nduplicate = 0.02\ncorrupt = 0.01'
)

lab_file() {
  local entry
  printf 'name = "benchprobe"\nsubnet = "198.18.86.0/24"\n[sandbox]\nenabled = false\n'
  printf '[[node]]\nname = "a"\ncommand = ["sleep", "3600"]\njson = true\n'
  for entry in "${shapes[@]}"; do
    printf '[[node]]\nname = "%s"\ncommand = ["sleep", "3600"]\njson = true\n%b\n' "${entry%%|*}" "${entry#*|}"
  done
}

# One backend's probe, in private namespaces and state: $1 sdss, $2 backend,
# $3 lab file, $4 output JSON, $5 rate, $6 duration.
probe_on() {
  unshare --net --mount --propagation private -- sh -c '
    mount -t tmpfs -o mode=0755 bench-netns /run/netns &&
    mount -t tmpfs -o mode=0700 bench-state /run/sdss && ip link set lo up &&
    "$1" lab up --no-verify --delay-backend "$2" "$3" >&2 &&
    { "$1" lab probe benchprobe --from a --rate "$5" --duration "$6" --json > "$4"; status=$?;
      "$1" lab down benchprobe >&2; exit $status; }' sh "$@"
}

if [[ "${1:-}" == "--inside-vm" ]]; then
  modprobe sch_netem
  mkdir -p /run/netns /run/sdss
  probe_on "$2" netem "$3" "$4" "$5" "$6" 2>"$4.err" || true
  exit 0
fi

install=1 use_vm=1 rate=100 duration=20s sdss=target/release/sdss
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-install) install=0 ;;
    --no-vm) use_vm=0 ;;
    --rate) rate=$2; shift ;;
    --duration) duration=$2; shift ;;
    -*) echo "usage: $0 [--no-install] [--no-vm] [--rate N] [--duration D] [SDSS]" >&2; exit 2 ;;
    *) sdss=$1 ;;
  esac
  shift
done
[[ $EUID -eq 0 ]] || { echo "bench-probe: needs root (namespaces; apt and modules for the VM)" >&2; exit 2; }
sdss=$(realpath "$sdss")
[[ -x $sdss ]] || { echo "bench-probe: no sdss binary at $sdss (cargo build --release)" >&2; exit 2; }

if ((use_vm)); then
  source "$PWD/scripts/vm.sh"
  vm_prepare bench-probe "$install"
else
  work=$(mktemp -d /tmp/bench-probe.XXXXXX)
  mkdir -p "$work/out"
  trap 'rm -rf "$work"' EXIT
fi
lab_file > "$work/out/probe.toml"

echo "bench-probe: ${#shapes[@]} shapes, $rate packets/s for $duration each; the emulator here"
probe_on "$sdss" emulator "$work/out/probe.toml" "$work/out/emulator.json" "$rate" "$duration" 2>"$work/out/emulator.err" ||
  [[ -s "$work/out/emulator.json" ]] || { cat "$work/out/emulator.err" >&2; exit 1; }
if ((use_vm)); then
  echo "bench-probe: netem in a VM (kernel $kver)"
  vm_boot 900 "$(printf '%q ' "$self" --inside-vm "$sdss" "$work/out/probe.toml" "$work/out/netem.json" "$rate" "$duration")" ||
    echo "bench-probe: the VM ended with an error (its console: $work/vm.log)" >&2
  [[ -s "$work/out/netem.json" ]] || { echo "bench-probe: no netem figures:" >&2; cat "$work/out/netem.json.err" >&2 || true; }
fi

python3 - "$work/out/emulator.json" "$work/out/netem.json" <<'EOF'
import json, sys

def load(path):
    try:
        with open(path) as f:
            return {p["to"]: p for p in json.load(f)["pairs"]}
    except (OSError, ValueError):
        return {}

emulator, netem = load(sys.argv[1]), load(sys.argv[2])
def cell(pair, name):
    if pair is None:
        return "-"
    figure = next((f for f in pair["figures"] if f["name"] == name), None)
    if figure is None or figure["measured"] is None:
        return "-"
    mark = {"pass": "", "fail": " FAIL", "not_judged": " (nj)"}[figure["verdict"]]
    return f"{figure['measured']:.4f}{mark}"

print(f"{'SHAPE':<10} {'FIGURE':<10} {'ASKED':>10} {'EMULATOR':>16} {'NETEM':>16}")
for to in emulator or netem:
    pair = emulator.get(to) or netem.get(to)
    for figure in pair["figures"]:
        if figure["verdict"] == "not_judged":
            continue
        asked = "-" if figure["expected"] is None else f"{figure['expected']:.4f}"
        print(f"{to:<10} {figure['name']:<10} {asked:>10} {cell(emulator.get(to), figure['name']):>16} {cell(netem.get(to), figure['name']):>16}")
for name, pairs in (("emulator", emulator), ("netem", netem)):
    if pairs:
        failed = sum(1 for p in pairs.values() if any(f["verdict"] == "fail" for f in p["figures"]))
        print(f"{name}: {len(pairs)} shapes, {len(pairs) - failed} pass, {failed} fail")
EOF

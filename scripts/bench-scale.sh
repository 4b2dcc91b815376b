#!/usr/bin/env bash
# How large a lab this machine verifies: for each size and announcement interval,
# a generated lab (link delays 2-21 ms) runs with `sdss lab run --json`, inside a
# private network and mount namespace like scripts/test.sh, and one row prints
# the pairs that passed, the median and p95 |error| of the measured delays, the
# emulator's late frames, the samples set aside because the emulator delivered
# their answer late ("-" without the emulator), and how long the lab took to
# come up and to grade.
#
#   scripts/bench-scale.sh [--nodes "5 20 50"] [--intervals "default 250ms 1s"]
#                          [--backend emulator|none|auto] [--runs N] [--bin PATH]
# --bin runs that sdss binary instead of building target/release/sdss (to compare builds).
# "default" leaves the interval to the lab (it grows with the lab's size).
# Needs root and python3. Figures, not a pass/fail: a 2-core machine is the floor.
set -euo pipefail
cd "$(dirname "$0")/.."

nodes="5 20 50"
intervals="default 250ms 1s"
backend=emulator
runs=1
bin=""
inside=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --inside-sandbox) inside=1 ;;
    --nodes) nodes="$2"; shift ;;
    --intervals) intervals="$2"; shift ;;
    --backend) backend="$2"; shift ;;
    --runs) runs="$2"; shift ;;
    --bin) bin=$(realpath "$2"); shift ;;
    *) echo "usage: $0 [--nodes LIST] [--intervals LIST] [--backend B] [--runs N] [--bin PATH]" >&2; exit 2 ;;
  esac
  shift
done

if [[ $inside -eq 0 ]]; then
  [[ $EUID -eq 0 ]] || { echo "bench-scale: needs root (namespaces, TAP devices)" >&2; exit 1; }
  command -v python3 >/dev/null || { echo "bench-scale: python3 missing" >&2; exit 1; }
  if [[ -z "$bin" ]]; then cargo build --release --quiet; bin=$PWD/target/release/sdss; fi
  exec unshare --net --mount --propagation private -- "$0" --inside-sandbox \
    --nodes "$nodes" --intervals "$intervals" --backend "$backend" --runs "$runs" --bin "$bin"
fi

mkdir -p /run/netns /run/sdss
mount -t tmpfs -o mode=0755 sdss-bench-netns /run/netns
mount -t tmpfs -o mode=0700 sdss-bench-state /run/sdss
ip link set lo up
work=$(mktemp -d /tmp/sdss-scale.XXXXXX)
cleanup() {
  for lab in $(ls /run/sdss/labs 2>/dev/null); do "$bin" lab down "$lab" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Writes a lab of $1 nodes with interval $2 ("default": none set) to stdout.
lab_file() {
  python3 - "$1" "$2" <<'PY'
import sys
count, interval = int(sys.argv[1]), sys.argv[2]
print('name = "scale"\nsubnet = "198.18.200.0/24"')
if interval != "default":
    print(f'[defaults]\ninterval = "{interval}"')
print('[verify]\ntime_limit = "120s"')
for i in range(count):
    print(f'[[node]]\nname = "n{i:03}"\ndelay = "{1 + i % 20}ms"')
PY
}

echo "$bin lab run --delay-backend $backend on $(nproc) cores; link delays 2-21 ms one way per pair"
printf '%5s  %8s  %-9s  %12s  %10s  %9s  %9s  %7s  %7s  %9s  %7s\n' nodes interval backend pass pass% 'med|e|us' 'p95|e|us' late% aside% 'emu cpu' 'nodes'

# Samples, until process $1 exits, the CPU time of its children (the emulator and
# the nodes, started by `sdss lab run`) and writes "emulator_s emulator_life_s nodes_s".
cpu_sampler() {
  python3 - "$1" <<'PY'
import os, sys, time
parent, tick = sys.argv[1], os.sysconf("SC_CLK_TCK")
seen = {}  # pid -> [kind, cpu seconds, first seen, last seen]
while os.path.exists(f"/proc/{parent}"):
    children = []
    try:
        tasks = os.listdir(f"/proc/{parent}/task")
    except OSError:
        break
    for task in tasks:  # a thread may end between the listing and the read
        try:
            with open(f"/proc/{parent}/task/{task}/children") as f:
                children += f.read().split()
        except OSError:
            pass
    now = time.monotonic()
    for pid in children:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kind = "emulator" if b"lab-emulator" in argv else "node"
        cpu = (int(fields[11]) + int(fields[12])) / tick
        entry = seen.setdefault(pid, [kind, 0.0, now, now])
        entry[1], entry[3] = cpu, now
    time.sleep(0.1)
emulator = [e for e in seen.values() if e[0] == "emulator"]
nodes = sum(e[1] for e in seen.values() if e[0] == "node")
life = sum(e[3] - e[2] for e in emulator)
print(f"{sum(e[1] for e in emulator):.2f} {life:.2f} {nodes:.2f}")
PY
}
for count in $nodes; do
  for interval in $intervals; do
    for _ in $(seq "$runs"); do
      lab_file "$count" "$interval" >"$work/scale.toml"
      status=0
      "$bin" lab run --json --delay-backend "$backend" "$work/scale.toml" >"$work/report.json" 2>"$work/progress.txt" &
      run_pid=$!
      cpu_sampler "$run_pid" >"$work/cpu.txt" &
      sampler_pid=$!
      wait "$run_pid" || status=$?
      wait "$sampler_pid" || true
      if ((status > 1)); then
        echo "bench-scale: lab run failed (exit $status):" >&2; tail -5 "$work/progress.txt" >&2; exit 1
      fi
      python3 - "$work/report.json" "$count" "$interval" "$backend" "$work/cpu.txt" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
count, interval, backend = sys.argv[2:5]
try:
    emu_s, emu_life, nodes_s = (float(x) for x in open(sys.argv[5]).read().split())
except (OSError, ValueError):
    emu_s, emu_life, nodes_s = 0.0, 0.0, 0.0
emu = f"{emu_s:.1f}s/{100 * emu_s / emu_life:.0f}%" if emu_life > 0 else "-"

errors = sorted(abs(p["error_ms"]) * 1000 for p in report["pairs"] if p.get("error_ms") is not None)
def pct(q):
    return f"{errors[min(len(errors) - 1, int(q * len(errors)))]:.0f}" if errors else "-"
s = report["summary"]
frames = report.get("emulator")
late = f"{100 * frames['late'] / max(1, frames['forwarded']):.1f}" if frames else "-"
aside = report.get("set_aside")
aside = f"{100 * aside['samples'] / max(1, aside['of']):.1f}" if aside else "-"
print(f"{count:>5}  {interval:>8}  {report['backend']:<9}  {s['passed']:>5}/{s['pairs']:<6}  "
      f"{100 * s['passed'] / max(1, s['pairs']):>9.1f}%  {pct(0.5):>9}  {pct(0.95):>9}  {late:>7}  {aside:>7}  {emu:>9}  {nodes_s:>6.1f}s   "
      f"graded after {report['elapsed_s']:.1f} s")
# Why pairs failed, grouped by the start of their reason, with the worst error.
failed = [p for p in report["pairs"] if p["verdict"] == "fail"]
if failed:
    kinds = {}
    for p in failed:
        kind = (p.get("reason") or "?").split(":")[0].split(" by ")[0]
        kinds.setdefault(kind, []).append(p)
    for kind, pairs in sorted(kinds.items(), key=lambda k: -len(k[1])):
        worst = max(pairs, key=lambda p: abs(p.get("error_ms") or 0))
        print(f"       failed, {kind}: {len(pairs)} pair(s), e.g. {worst['from']} -> {worst['to']}: "
              f"{worst.get('reason')} ({worst['samples']}/{worst['total_samples']} samples)")
PY
    done
  done
done

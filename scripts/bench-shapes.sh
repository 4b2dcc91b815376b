#!/usr/bin/env bash
# The userspace emulator's CPU per frame with every netem shape on against
# delay alone, side by side in one run, two ways:
#   1. the forwarding decision alone (switching, draws, state machines), in
#      process: an ignored test, built in release mode, routes 2 million
#      frames through each (needs cargo);
#   2. the whole emulator process in a two-node lab on the emulator, a paced
#      UDP stream from one node to the other: its CPU time (utime + stime)
#      over the frames it received from the TAPs. The emulator sleeps until
#      shortly before each due time and spins the rest, so this figure is
#      mostly that spin (fewer, fuller wake-ups under slots cost less).
#
#   sudo scripts/bench-shapes.sh [--pps N] [--seconds S] [SDSS_BINARY]
#
# Exit 0 when both ran, 1 when one failed, 2 on a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."

pps=20000
seconds=10
bin=target/release/sdss
while [[ $# -gt 0 ]]; do
  case "$1" in
    --pps) pps=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    -*) echo "usage: $0 [--pps N] [--seconds S] [SDSS_BINARY]" >&2; exit 2 ;;
    *) bin=$1 ;;
  esac
  shift
done
[[ $EUID -eq 0 ]] || { echo "bench-shapes: needs root (namespaces)" >&2; exit 2; }
[[ -x $bin ]] || { echo "bench-shapes: no sdss binary at $bin (cargo build --release)" >&2; exit 2; }
bin=$(realpath "$bin")
command -v cargo >/dev/null || { echo "bench-shapes: cargo missing (it builds the in-process benchmark)" >&2; exit 2; }
cargo test --release --locked --quiet --lib forwarding_cost -- --ignored --nocapture | grep -v '^$\|^running\|^test result\|^\.$'
work=$(mktemp -d /tmp/bench-shapes.XXXXXX)
labs=()
cleanup() {
  for lab in "${labs[@]}"; do "$bin" lab down "$lab" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

lab_file() { # NAME SHAPE-LINES
  cat >"$work/$1.toml" <<EOF
name = "$1"
subnet = "198.18.11.0/24"
[defaults]
interval = "1s"
[[node]]
name = "a"
delay = "5ms"
$2
[[node]]
name = "b"
EOF
}
lab_file benchplain ''
lab_file benchshaped 'jitter = "1ms"
distribution = "normal"
delay_correlation = 0.25
loss_model = { gemodel = [0.01, 0.3, 1.0, 0.0] }
duplicate = 0.01
reorder = 0.1
reorder_gap = 5
corrupt = 0.001
rate = "1gbit"
limit = 5000
slot = { min = "100us", max = "200us", packets = 64 }'

# CPU seconds of the lab's emulator process so far.
emulator_cpu() {
  local pid
  pid=$(pgrep -f "lab-emulator.*/$1/" | head -1)
  [[ -n $pid ]] || { echo "bench-shapes: no emulator process for $1" >&2; return 1; }
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$pid/stat"
}
# Frames the emulator has received from its TAPs so far.
emulator_frames() {
  python3 -c 'import json, sys; print(sum(p["received"] for p in json.load(open(sys.argv[1]))["ports"]))' \
    "/run/sdss/labs/$1/lab-emulator.counters.json"
}

flood() { # LAB: a paced stream of 64-byte datagrams from a to b
  ip netns exec "sdss-$1-b" python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 9000)); s.settimeout(0.2)
end = time.monotonic() + float(__import__("sys").argv[1]) + 1
while time.monotonic() < end:
    try: s.recv(2048)
    except OSError: pass
' "$seconds" &
  local sink=$!
  ip netns exec "sdss-$1-a" python3 -c '
import socket, sys, time
pps, seconds = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = bytes(22)
start = time.monotonic(); sent = 0
while True:
    now = time.monotonic() - start
    if now >= seconds: break
    due = int(now * pps)
    while sent < due:
        s.sendto(payload, ("198.18.11.2", 9000)); sent += 1
' "$pps" "$seconds"
  wait "$sink" || true
}

declare -A cpu frames
for lab in benchplain benchshaped; do
  labs+=("$lab")
  "$bin" lab up "$work/$lab.toml" --delay-backend emulator --no-verify >"$work/$lab.up" 2>&1 ||
    { cat "$work/$lab.up" >&2; exit 1; }
  sleep 2
  c0=$(emulator_cpu "$lab") f0=$(emulator_frames "$lab")
  flood "$lab"
  sleep 2
  c1=$(emulator_cpu "$lab") f1=$(emulator_frames "$lab")
  cpu[$lab]=$(python3 -c "print($c1 - $c0)")
  frames[$lab]=$((f1 - f0))
  "$bin" lab down "$lab" >/dev/null
done

python3 - "$pps" "$seconds" "${cpu[benchplain]}" "${frames[benchplain]}" "${cpu[benchshaped]}" "${frames[benchshaped]}" <<'PY'
import sys
pps, seconds = int(sys.argv[1]), float(sys.argv[2])
rows = [("delay only", float(sys.argv[3]), int(sys.argv[4])), ("every shape", float(sys.argv[5]), int(sys.argv[6]))]
print(f"whole emulator process per frame, {pps} datagrams/s of 64 bytes for {seconds:g} s, two nodes")
print(f"{'links':<12}{'frames':>10}{'CPU s':>9}{'us/frame':>10}")
for name, cpu, frames in rows:
    print(f"{name:<12}{frames:>10}{cpu:>9.2f}{cpu / max(frames, 1) * 1e6:>10.2f}")
base = rows[0][1] / max(rows[0][2], 1)
print(f"every shape costs {rows[1][1] / max(rows[1][2], 1) / base if base else float('nan'):.2f}x delay only per frame")
PY

#!/usr/bin/env bash
# Accuracy of the userspace link emulator (`sdss lab-emulator`), measured inside a
# private network and mount namespace like scripts/test.sh: nothing touches the
# machine's own network.
#
#  1. RTT with `ping` over a 25 ms/way link (target: within 0.1 ms of 50 ms).
#  2. One-way delay per ordered pair over a 4-port emulator with distinct asymmetric
#     delays: UDP probes stamped with CLOCK_REALTIME before sending and by the
#     kernel on receipt (SO_TIMESTAMPNS; every namespace shares the host clock), so
#     only the emulator's error is measured. Warm-up probes (ARP) are not graded.
#     Targets over all samples: median |error| <= 50 us, p95 <= 250 us.
#     This part measures the emulator alone.
#  3. The example labs (`sdss lab run --json --delay-backend emulator`): per ordered
#     pair, the injected one-way delay against the median the sdss nodes measured,
#     and over all pairs the median and p95 of the absolute error, against the same
#     targets. These figures include what the nodes' own TCP stacks and wake-ups add;
#     a zero-delay run over veth (`--delay-backend none`) prints that baseline, and a
#     calibrated run of five-nodes (`--calibrate`) the error beyond each pair's floor.
#     With --baseline, every lab runs with both binaries, alternately (so machine
#     noise hits both alike), and each figure prints in two columns.
#
#   scripts/bench-accuracy.sh [--pings N] [--probes N] [--bin PATH] [--baseline PATH]
# --bin runs that sdss binary instead of building target/release/sdss; --baseline
# runs another build beside it in part 3 (e.g. the last release, to compare).
# Needs root, iputils-ping (apt-get install -y iputils-ping) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

pings=500
probes=50
bin=""
baseline=""
inside=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --inside-sandbox) inside=1 ;;
    --pings) pings="$2"; shift ;;
    --probes) probes="$2"; shift ;;
    --bin) bin=$(realpath "$2"); shift ;;
    --baseline) baseline=$(realpath "$2"); shift ;;
    *) echo "usage: $0 [--pings N] [--probes N] [--bin PATH] [--baseline PATH]" >&2; exit 2 ;;
  esac
  shift
done

if [[ $inside -eq 0 ]]; then
  [[ $EUID -eq 0 ]] || { echo "bench-accuracy: needs root (TAP devices, namespaces)" >&2; exit 1; }
  command -v ping >/dev/null || { echo "bench-accuracy: ping missing: apt-get install -y iputils-ping" >&2; exit 1; }
  command -v python3 >/dev/null || { echo "bench-accuracy: python3 missing" >&2; exit 1; }
  if [[ -z "$bin" ]]; then cargo build --release --quiet; bin=$PWD/target/release/sdss; fi
  for b in "$bin" ${baseline:+"$baseline"}; do
    [[ -x $b ]] || { echo "bench-accuracy: $b is not an executable" >&2; exit 1; }
  done
  exec unshare --net --mount --propagation private -- "$0" --inside-sandbox --pings "$pings" --probes "$probes" \
    --bin "$bin" ${baseline:+--baseline "$baseline"}
fi

mkdir -p /run/netns
mkdir -p /run/sdss
mount -t tmpfs -o mode=0755 sdss-bench-netns /run/netns
mount -t tmpfs -o mode=0700 sdss-bench-state /run/sdss
ip link set lo up
work=$(mktemp -d /tmp/sdss-bench.XXXXXX)
emulator_pid=""
cleanup() {
  if [[ -n "$emulator_pid" ]]; then kill -TERM "$emulator_pid" 2>/dev/null || true; wait "$emulator_pid" 2>/dev/null || true; fi
  for ns in $(ip netns list | awk '{print $1}'); do ip netns del "$ns"; done
  rm -rf "$work"
}
trap cleanup EXIT

# Starts the emulator on $1 (a spec file) and waits for its `ready`.
start_emulator() {
  "$bin" lab-emulator "$1" >"$work/emulator.out" 2>"$work/emulator.err" &
  emulator_pid=$!
  for _ in $(seq 100); do
    grep -qx ready "$work/emulator.out" && return 0
    kill -0 "$emulator_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench-accuracy: emulator did not start:" >&2; cat "$work/emulator.err" >&2; exit 1
}

stop_emulator() {
  kill -TERM "$emulator_pid"; wait "$emulator_pid" || true; emulator_pid=""
  sed 's/^/    /' "$work/emulator.err"
}

# ---------------------------------------------------------------- 1. RTT with ping
echo "== RTT over a 25 ms/way link, ping -c $pings -i 0.02"
for ns in rtt-a rtt-b; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
cat >"$work/rtt.json" <<EOF
{"ports": [{"netns": "rtt-a"}, {"netns": "rtt-b"}],
 "default": {"delay": "25ms", "jitter": "0", "loss": 0.0}}
EOF
start_emulator "$work/rtt.json"
ip -n rtt-a addr add 10.90.0.1/24 dev eth0
ip -n rtt-b addr add 10.90.0.2/24 dev eth0
ip netns exec rtt-a ping -c 3 -q 10.90.0.2 >/dev/null   # warm-up: ARP crosses the link too
ip netns exec rtt-a ping -c "$pings" -i 0.02 10.90.0.2 >"$work/ping.txt"
grep -E 'packets transmitted|rtt min' "$work/ping.txt" | sed 's/^/    /'
# ping prints each sample to 0.1 ms but its summary to the microsecond: the target
# is judged on the summary's mean, the distribution is shown from the samples.
mean=$(sed -n 's|^rtt min/avg/max/mdev = [0-9.]*/\([0-9.]*\)/.*|\1|p' "$work/ping.txt")
grep -o 'time=[0-9.]*' "$work/ping.txt" | cut -d= -f2 | sort -n | awk -v mean="$mean" '
  { v[NR] = $1 }
  END {
    n = NR; median = v[int((n + 1) / 2)]; p95 = v[int(n * 0.95 + 0.5)]
    off = mean - 50; if (off < 0) off = -off
    printf "    samples (0.1 ms resolution): median %.1f  p95 %.1f  max %.1f ms (n=%d)\n", median, p95, v[n], n
    printf "    target: mean RTT within 0.1 ms of 50 ms -> %.3f ms, off by %.3f ms: %s\n", mean, off, (off <= 0.1) ? "PASS" : "FAIL"
  }'
stop_emulator
ip netns del rtt-a; ip netns del rtt-b

# ------------------------------------------------------ 2. one-way delay per pair
ports=4
echo
echo "== One-way delay per ordered pair, $ports ports, $probes probes per pair"
links=""
declare -A injected
for from in $(seq 0 $((ports - 1))); do
  for to in $(seq 0 $((ports - 1))); do
    [[ $from -eq $to ]] && continue
    us=$(( (2 + 3 * from + 5 * to) * 1000 + 250 * from ))   # distinct, asymmetric, not whole ms
    injected[$from,$to]=$us
    links+="${links:+,}{\"from\": $from, \"to\": $to, \"impairment\": {\"delay\": \"${us}us\", \"jitter\": \"0\", \"loss\": 0.0}}"
  done
done
ports_json=""
for i in $(seq 0 $((ports - 1))); do
  ip netns add "pair-$i"; ip -n "pair-$i" link set lo up
  ports_json+="${ports_json:+,}{\"netns\": \"pair-$i\"}"
done
echo "{\"ports\": [$ports_json], \"impairments\": [$links]}" >"$work/pairs.json"
start_emulator "$work/pairs.json"
for i in $(seq 0 $((ports - 1))); do ip -n "pair-$i" addr add "10.91.0.$((i + 1))/24" dev eth0; done

cat >"$work/probe.py" <<'EOF'
import socket, struct, sys, time
SO_TIMESTAMPNS = 35
def receive(path, expected):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind(("0.0.0.0", 9999)); s.settimeout(30)
    with open(path, "w") as out:
        got = 0
        while got < expected:
            data, anc, _, peer = s.recvmsg(256, 256)
            kind, sent_ns = struct.unpack("!cq", data[:9])
            if kind != b"g":
                continue
            for level, typ, raw in anc:
                if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", raw[:16])
                    out.write("%s %d\n" % (peer[0], sec * 10**9 + nsec - sent_ns))
                    got += 1
            out.flush()
def send(targets, probes):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for t in targets:        # warm-up: ARP crosses the delayed link, not graded
        s.sendto(struct.pack("!cq", b"w", 0), (t, 9999))
    time.sleep(0.5)
    for _ in range(probes):
        for t in targets:
            s.sendto(struct.pack("!cq", b"g", time.time_ns()), (t, 9999))
        time.sleep(0.01)
if sys.argv[1] == "receive":
    receive(sys.argv[2], int(sys.argv[3]))
else:
    send(sys.argv[3:], int(sys.argv[2]))
EOF
receivers=()
for j in $(seq 0 $((ports - 1))); do
  ip netns exec "pair-$j" python3 "$work/probe.py" receive "$work/recv-$j.txt" $(( probes * (ports - 1) )) &
  receivers+=($!)
done
sleep 0.5
senders=()
for i in $(seq 0 $((ports - 1))); do
  targets=$(for j in $(seq 0 $((ports - 1))); do if [[ $j -ne $i ]]; then echo "10.91.0.$((j + 1))"; fi; done)
  ip netns exec "pair-$i" python3 "$work/probe.py" send "$probes" $targets &
  senders+=($!)
done
wait "${senders[@]}"
wait "${receivers[@]}"
stop_emulator

injected_list=$(for key in "${!injected[@]}"; do echo "$key=${injected[$key]}"; done)
python3 - "$work" "$ports" $injected_list <<'EOF'
import statistics, sys
work, ports = sys.argv[1], int(sys.argv[2])
injected = {}
for item in sys.argv[3:]:
    pair, us = item.split("=")
    f, t = pair.split(",")
    injected[(int(f), int(t))] = int(us)
def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]
every = []
print("    %-4s %-4s %12s %12s %10s %11s %5s" % ("from", "to", "injected us", "median us", "error us", "p95 |e| us", "n"))
for (f, t), inj in sorted(injected.items()):
    errors = []
    with open("%s/recv-%d.txt" % (work, t)) as lines:
        for line in lines:
            src, ns = line.split()
            if src == "10.91.0.%d" % (f + 1):
                errors.append(int(ns) / 1000 - inj)
    if not errors:
        print("    %-4d %-4d %12d %12s" % (f, t, inj, "no samples"))
        continue
    every += errors
    m = statistics.median(errors)
    print("    %-4d %-4d %12d %12.1f %10.1f %11.1f %5d" % (f, t, inj, inj + m, m, pct([abs(e) for e in errors], 0.95), len(errors)))
absolute = [abs(e) for e in every]
median, p95 = statistics.median(absolute), pct(absolute, 0.95)
print("    over all %d samples: median |error| %.1f us (target <= 50): %s; p95 |error| %.1f us (target <= 250): %s"
      % (len(every), median, "PASS" if median <= 50 else "FAIL", p95, "PASS" if p95 <= 250 else "FAIL"))
EOF

# ------------------------------------------------------ 3. the example labs, end to end
echo
echo "== Example labs on the emulator: injected vs measured by the sdss nodes"
builds=("new=$bin")
if [[ -n "$baseline" ]]; then
  builds=("base=$baseline" "new=$bin")
  echo "    baseline:   $baseline"
  echo "    this build: $bin"
  echo "    (every lab runs with both, alternately, so machine noise hits both alike)"
fi
# A name, then the `lab run` arguments; each runs once per build, the builds alternating.
runs=(
  "five|--delay-backend emulator labs/five-nodes.toml"
  "matrix|--delay-backend emulator labs/matrix.toml"
  "two|--delay-backend emulator labs/two-nodes.toml"
  "floor|--delay-backend none labs/five-nodes.toml"
  "calibrated|--calibrate --delay-backend emulator labs/five-nodes.toml"
)
for run in "${runs[@]}"; do
  name=${run%%|*}
  read -r -a args <<<"${run#*|}"
  for build in "${builds[@]}"; do
    tag=${build%%=*}
    "${build#*=}" lab run --json "${args[@]}" >"$work/$tag-$name.json" 2>"$work/$tag-$name.err" || true
  done
done
tags=$(for build in "${builds[@]}"; do echo "${build%%=*}"; done)
# shellcheck disable=SC2086 # one argument per build
python3 - "$work" $tags <<'EOF'
import json, statistics, sys
work, tags = sys.argv[1], sys.argv[2:]
header = {"base": "baseline", "new": "this build"}
labs = ("five", "matrix", "two")
def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]
def load(tag, name):
    path = "%s/%s-%s.json" % (work, tag, name)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print("    %s, %s: no report (%s)" % (header[tag], name, e))
        return None
reports = {tag: {name: load(tag, name) for name in labs + ("floor", "calibrated")} for tag in tags}

# Per pair, what each build measured.
print("    %-8s %-5s %-5s %12s" % ("lab", "from", "to", "injected ms")
      + "".join("   %12s %9s %-7s" % ("measured ms", "error us", "verdict") for _ in tags)
      + ("   (%s)" % " | ".join(header[t] for t in tags) if len(tags) > 1 else ""))
rows = {}
for tag in tags:
    for name in labs:
        report = reports[tag][name]
        for p in (report or {}).get("pairs", []):
            rows.setdefault((report["lab"], p["from"], p["to"]), {"expected": p["expected_ms"]})[tag] = p
for (lab, f, t), row in rows.items():
    line = "    %-8s %-5s %-5s %12.3f" % (lab, f, t, row["expected"])
    for tag in tags:
        p = row.get(tag)
        if p is None or p["measured_ms"] is None:
            line += "   %12s %9s %-7s" % ("-", "-", (p or {}).get("verdict", "-"))
        else:
            error_us = (p["measured_ms"] - p["expected_ms"]) * 1000
            line += "   %12.3f %+9.1f %-7s" % (p["measured_ms"], error_us, p["verdict"])
    print(line)

def figures(r):
    out = {}
    errors, five = [], []
    for name in labs:
        for p in (r[name] or {}).get("pairs", []):
            if p["measured_ms"] is not None:
                error_us = (p["measured_ms"] - p["expected_ms"]) * 1000
                errors.append(error_us)
                if name == "five":
                    five.append(abs(error_us))
    floor = [p["measured_ms"] * 1000 for p in (r["floor"] or {}).get("pairs", []) if p["measured_ms"] is not None]
    if floor:
        out["floor"] = (statistics.median(floor), pct(floor, 0.95), len(floor))
    if errors:
        absolute = [abs(e) for e in errors]
        out["all"] = (statistics.median(absolute), pct(absolute, 0.95), len(errors))
        if floor:
            beyond = [abs(e - statistics.median(floor)) for e in errors]
            out["beyond"] = (statistics.median(beyond), pct(beyond, 0.95), len(beyond))
    if five:
        out["five"] = (statistics.median(five), pct(five, 0.95), len(five))
    calibrated = (r["calibrated"] or {}).get("pairs", [])
    graded = [p for p in calibrated if p.get("error_ms") is not None]
    floors = [p["floor_ms"] * 1000 for p in graded if p.get("floor_ms") is not None]
    beyond_floors = [abs(p["error_ms"]) * 1000 for p in graded]
    if beyond_floors and floors:
        out["floors"] = (statistics.median(floors), max(floors), len(floors))
        out["calibrated"] = (statistics.median(beyond_floors), pct(beyond_floors, 0.95), len(beyond_floors))
        out["passed"] = (sum(1 for p in calibrated if p["verdict"] == "pass"), len(calibrated))
    return out
got = {tag: figures(reports[tag]) for tag in tags}

# The figures, one column per build.
def cell(tag, key):
    v = got[tag].get(key)
    if key == "passed":
        return "%d of %d" % v if v else "-"
    return "%.1f / %.1f (n=%d)" % v if v else "-"
lines = (
    ("zero-delay floor over veth (five-nodes, no emulator): median / p95 us", "floor"),
    ("emulator beyond that floor (three labs): median / p95 |error| us", "beyond"),
    ("three labs as measured: median / p95 |error| us", "all"),
    ("five-nodes uncalibrated: median / p95 |error| us", "five"),
    ("five-nodes calibrated, floors (at 1 ms): median / max us", "floors"),
    ("five-nodes calibrated, beyond the floors: median / p95 |error| us", "calibrated"),
    ("five-nodes calibrated: pairs that pass", "passed"),
)
print()
print("    %-70s" % "" + "".join(" %-23s" % header[t] for t in tags))
for label, key in lines:
    print("    %-70s" % label + "".join(" %-23s" % cell(t, key) for t in tags))

# Verdicts on this build; against the baseline's figures when there is one.
new = got["new"]
def verdict(ok):
    return "PASS" if ok else "FAIL"
if "all" in new:
    print("    this build, three labs: median |error| %.1f us (target <= 50): %s; p95 %.1f us (target <= 250): %s"
          % (new["all"][0], verdict(new["all"][0] <= 50), new["all"][1], verdict(new["all"][1] <= 250)))
if "beyond" in new:
    print("    this build, emulator beyond the floor: median %.1f us (target <= 50): %s; p95 %.1f us (target <= 250): %s"
          % (new["beyond"][0], verdict(new["beyond"][0] <= 50), new["beyond"][1], verdict(new["beyond"][1] <= 250)))
if "calibrated" in new:
    print("    this build, calibrated: median %.1f us (target <= 15): %s; p95 %.1f us (target <= 40): %s"
          % (new["calibrated"][0], verdict(new["calibrated"][0] <= 15), new["calibrated"][1], verdict(new["calibrated"][1] <= 40)))
base = got.get("base", {})
for label, key in (("zero-delay floor, median", "floor"), ("five-nodes uncalibrated, median |error|", "five")):
    if key in base and key in new:
        print("    this build, %s: %.1f us, at most half the baseline's %.1f us (<= %.1f): %s"
              % (label, new[key][0], base[key][0], base[key][0] / 2, verdict(new[key][0] <= base[key][0] / 2)))
EOF

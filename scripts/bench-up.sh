#!/usr/bin/env bash
# How fast a lab comes up and goes down: `sdss lab up --no-verify` of labs of
# 10, 50 and 100 nodes (no delays) against an iproute2 script that makes the
# same objects (the namespaces, a bridge, a veth per node with its end in the
# node's namespace as eth0, addresses, links up, default routes, a permanent
# neighbour entry for every other node, one `ip -batch` per node) and starts
# the same nodes. Runs alternate between the two; each prints wall times, and
# one row per size gives the medians, the ratio, and sdss's stage breakdown.
# Teardown is timed too, and checked complete: no name left under /run/netns
# and no lab process left.
#
#   scripts/bench-up.sh [--sizes "10 50 100"] [--runs N]
# Needs root, iproute2 and python3. Runs in a private network and mount
# namespace, like scripts/test.sh: nothing it makes is visible outside.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes="10 50 100"
runs=5
inside=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --inside-sandbox) inside=1 ;;
    --sizes) sizes="$2"; shift ;;
    --runs) runs="$2"; shift ;;
    *) echo "usage: $0 [--sizes LIST] [--runs N]" >&2; exit 2 ;;
  esac
  shift
done

if [[ $inside -eq 0 ]]; then
  [[ $EUID -eq 0 ]] || { echo "bench-up: needs root (namespaces and links)" >&2; exit 1; }
  command -v python3 >/dev/null || { echo "bench-up: python3 missing" >&2; exit 1; }
  cargo build --release --quiet
  exec unshare --net --mount --propagation private -- "$0" --inside-sandbox \
    --sizes "$sizes" --runs "$runs"
fi

mkdir -p /run/netns /run/sdss
mount -t tmpfs -o mode=0755 sdss-bench-netns /run/netns
mount -t tmpfs -o mode=0700 sdss-bench-state /run/sdss
ip link set lo up
work=$(mktemp -d /tmp/sdss-up.XXXXXX)
bin=$PWD/target/release/sdss
cleanup() {
  for lab in $(ls /run/sdss/labs 2>/dev/null); do "$bin" lab down "$lab" >/dev/null 2>&1 || true; done
  for ns in $(ls /run/netns 2>/dev/null); do ip netns pids "$ns"; done | xargs -r kill 2>/dev/null || true
  for ns in $(ls /run/netns 2>/dev/null); do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }

# The lab file and the equivalent scripts for $1 nodes.
generate() {
  python3 - "$1" "$work" "$bin" <<'PY'
import ipaddress, sys
count, work, sdss = int(sys.argv[1]), sys.argv[2], sys.argv[3]
net = ipaddress.ip_network("198.18.0.0/16")
hosts = net.hosts()
nodes = [(f"n{i}", str(next(hosts)), "02:5d:%02x:%02x:%02x:01" % (i >> 16 & 255, i >> 8 & 255, i & 255))
         for i in range(count)]
with open(f"{work}/lab{count}.toml", "w") as f:
    f.write(f'name = "up{count}"\nsubnet = "{net}"\n[defaults]\ninterval = "1s"\n')
    for name, _, _ in nodes:
        f.write(f'[[node]]\nname = "{name}"\n')
sw = f"ip{count}"
up = ["#!/bin/sh", "set -e", f"ip netns add {sw}", f"ip -n {sw} link set lo up",
      f"ip -n {sw} link add br0 type bridge", f"ip -n {sw} link set br0 up"]
for i, (name, addr, mac) in enumerate(nodes):
    ns = f"{sw}-{name}"
    up += [f"ip netns add {ns}",
           f"ip -n {sw} link add p{i} type veth peer name eth0 address {mac} netns {ns}",
           f"ip -n {sw} link set p{i} master br0 up",
           f"ip -n {ns} addr add {addr}/{net.prefixlen} dev eth0",
           f"ip -n {ns} link set eth0 up",
           f"ip -n {ns} link set lo up",
           f"ip -n {ns} route add default dev eth0 scope link"]
    batch = "\\n".join(f"neigh replace {a} lladdr {m} dev eth0 nud permanent"
                       for n, a, m in nodes if n != name)
    up.append(f"printf '{batch}\\n' | ip -n {ns} -batch -")
for name, _, _ in nodes:
    ns = f"{sw}-{name}"
    up.append(f"ip netns exec {ns} setsid {sdss} node --json --interval 1s "
              f">{work}/{ns}.out 2>&1 </dev/null &")
names = " ".join(f"{sw}-{n}" for n, _, _ in nodes)
down = ["#!/bin/sh", f"for ns in {names}; do ip netns pids $ns; done | xargs -r kill",
        f"while pgrep -f '^{sdss} node --json' >/dev/null; do sleep 0.02; done",
        f"for ns in {names} {sw}; do ip netns del $ns; done"]
for kind, lines in (("up", up), ("down", down)):
    with open(f"{work}/{kind}{count}.sh", "w") as f:
        f.write("\n".join(lines) + "\n")
PY
}

# Checks that a teardown left nothing: no name under /run/netns, no node of
# this binary anywhere (in a namespace without a name it would still run).
left_behind() {
  local names procs
  names=$(ls /run/netns | wc -l)
  procs=$(pgrep -fc "^$bin node" || true)
  if ((names || procs)); then
    echo "bench-up: left behind: $names namespace names, $procs node processes" >&2
    return 1
  fi
}

rows=()
for size in $sizes; do
  generate "$size"
  : >"$work/times$size"
  for run in $(seq "$runs"); do
    order="sdss script"
    ((run % 2)) || order="script sdss"
    for tool in $order; do
      if [[ $tool == sdss ]]; then
        t0=$(now)
        "$bin" lab up "$work/lab$size.toml" --no-verify 2>"$work/sdss.err" >/dev/null
        t1=$(now)
        "$bin" lab down "up$size" >/dev/null 2>&1
        t2=$(now)
        stages=$(grep -o 'up in .*s)' "$work/sdss.err" | sed 's/^up in [0-9.]* s (//; s/ s)$//')
      else
        t0=$(now)
        sh "$work/up$size.sh"
        t1=$(now)
        sh "$work/down$size.sh"
        t2=$(now)
        stages=""
      fi
      left_behind
      echo "$tool $t0 $t1 $t2 $stages" >>"$work/times$size"
      printf 'bench-up: %3d nodes, run %d, %-6s up %6.3f s, down %6.3f s  %s\n' "$size" "$run" "$tool" \
        "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$stages"
    done
  done
done

python3 - "$work" $sizes <<'PY'
import re, statistics, sys
work, sizes = sys.argv[1], sys.argv[2:]
print(f"\n{'nodes':>5} {'sdss up':>9} {'script up':>10} {'ratio':>7} {'sdss down':>10} {'script down':>12} {'ratio':>7}  sdss stages (median s)")
for size in sizes:
    rows = [l.split(maxsplit=4) for l in open(f"{work}/times{size}")]
    def med(tool, a, b):
        return statistics.median(float(r[b]) - float(r[a]) for r in rows if r[0] == tool)
    su, pu = med("sdss", 1, 2), med("script", 1, 2)
    sd, pd = med("sdss", 2, 3), med("script", 2, 3)
    stages = {}
    for r in rows:
        if r[0] == "sdss" and len(r) > 4:
            for name, t in re.findall(r"([a-z]+) ([0-9.]+)", r[4]):
                stages.setdefault(name, []).append(float(t))
    breakdown = ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in stages.items())
    print(f"{size:>5} {su:>8.3f}s {pu:>9.3f}s {pu / su:>6.1f}x {sd:>9.3f}s {pd:>11.3f}s {pd / sd:>6.1f}x  {breakdown}")
print("ratio: the script's time over sdss's (above 1: sdss is faster); medians of the runs")
PY

#!/usr/bin/env bash
# How a link change's tc commands cost on this machine's own kernel, side by
# side: one `tc -batch` per namespace, every namespace at once (what a
# timeline's set, cut, heal or partition runs on netem), against one tc
# process per leaf (what it ran before). htb classes with pfifo leaves stand
# in for netem's, which a kernel without sch_netem lacks; the cost is tc's
# processes and netlink round trips either way. Namespaces live in a private
# mount namespace's /run/netns and are removed on exit.
#
#   sudo scripts/bench-tc-batch.sh [--nodes N]     (default 100)
set -euo pipefail
nodes=100
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) nodes=$2; shift ;;
    *) echo "usage: $0 [--nodes N]" >&2; exit 2 ;;
  esac
  shift
done
[[ $EUID -eq 0 ]] || { echo "bench-tc-batch: needs root (namespaces)" >&2; exit 2; }
command -v tc >/dev/null || { echo "bench-tc-batch: tc missing (iproute2)" >&2; exit 2; }
if [[ "${BENCH_TC_INSIDE:-}" != 1 ]]; then
  exec env BENCH_TC_INSIDE=1 unshare -m bash -c 'mount -t tmpfs bench-tc /run/netns && exec "$0" "$@"' "$0" --nodes "$nodes"
fi
work=$(mktemp -d /tmp/bench-tc-batch.XXXXXX)
cleanup() {
  for i in $(seq "$nodes"); do ip netns del "tcb$i" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
leaves=$((nodes - 1))
{
  echo "qdisc add dev d0 root handle 1: htb default 1"
  for j in $(seq 2 $((leaves + 1))); do printf 'class add dev d0 parent 1: classid 1:%x htb rate 1gbit quantum 1514\n' "$j"; done
  for j in $(seq 2 $((leaves + 1))); do printf 'qdisc add dev d0 parent 1:%x handle %x: pfifo limit 1000\n' "$j" "$j"; done
} >"$work/setup"
for i in $(seq "$nodes"); do
  ip netns add "tcb$i"
  ip -n "tcb$i" link add d0 type veth peer name d1
  ip -n "tcb$i" link set d0 up
  tc -n "tcb$i" -batch "$work/setup"
done
# A partition into two halves changes, on every node, the leaves toward the
# other half: half of each node's leaves.
half=$(((leaves + 1) / 2))
for j in $(seq 2 $((half + 1))); do printf 'qdisc replace dev d0 parent 1:%x handle %x: pfifo limit 500\n' "$j" "$j"; done >"$work/change"
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
start=$(date +%s%N)
for i in $(seq "$nodes"); do tc -n "tcb$i" -batch "$work/change" & done
wait
batch=$(ms "$start")
start=$(date +%s%N)
for i in $(seq "$nodes"); do
  (for j in $(seq 2 $((half + 1))); do tc -n "tcb$i" qdisc replace dev d0 parent "1:$(printf %x "$j")" handle "$(printf %x "$j"):" pfifo limit 400; done) &
done
wait
each=$(ms "$start")
echo "a partition of $nodes nodes: $half leaves replaced on each of $nodes namespaces, $((half * nodes)) in all"
printf '  %-44s %6d ms\n' "one tc -batch per namespace, all at once" "$batch" "one tc process per leaf (before)" "$each"
echo "  ratio $(python3 -c "print(round($each / max($batch, 1), 1))")x"

#!/usr/bin/env bash
# How `sdss node` holds up against hostile peers: for each attack, a victim A and
# a real peer B run on loopback (--interval 200ms --refresh-every 3) inside a
# private network, mount and PID namespace; once A measures B, the attack runs
# ~10 s and the script watches 20 s more. Attackers are scripts/hostile.py
# (loopback only, bounded). One table at the end, one column per binary, so a
# "before" and an "after" build read side by side.
#
#   scripts/bench-hostile.sh [--quick] [SDSS_BINARY ...]
# Default binary: target/release/sdss, built first. --quick: shorter windows and
# a 20,000-ID flood instead of 100,000 (~1.5 min per binary instead of ~4).
# Needs root and python3. Figures, not a pass/fail.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."

quick=0
inside=0
bins=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --inside-sandbox) inside=1 ;;
    --quick) quick=1 ;;
    -*) echo "usage: $0 [--quick] [SDSS_BINARY ...]" >&2; exit 2 ;;
    *) bins+=("$(realpath "$1")") ;;
  esac
  shift
done

if [[ $inside -eq 0 ]]; then
  [[ $EUID -eq 0 ]] || { echo "bench-hostile: needs root (network and PID namespaces)" >&2; exit 1; }
  command -v python3 >/dev/null || { echo "bench-hostile: python3 missing" >&2; exit 1; }
  if [[ ${#bins[@]} -eq 0 ]]; then
    cargo build --release --quiet
    bins=("$PWD/target/release/sdss")
  fi
  for b in "${bins[@]}"; do
    [[ -x $b ]] || { echo "bench-hostile: $b is not an executable" >&2; exit 1; }
  done
  flags=(--inside-sandbox)
  [[ $quick -eq 1 ]] && flags+=(--quick)
  # A PID namespace too: when this script ends, whatever it started dies with it.
  exec unshare --net --mount --pid --fork --mount-proc --propagation private -- \
    bash "$self" "${flags[@]}" "${bins[@]}"
fi

ip link set lo up # 127.0.0.66-69 need nothing more: all of 127/8 is local on lo
work=$(mktemp -d /tmp/sdss-hostile.XXXXXX)
pids=()
cleanup() {
  trap - EXIT INT TERM
  if [[ ${#pids[@]} -gt 0 ]]; then kill -KILL "${pids[@]}" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $quick -eq 1 ]]; then
  idle=2 attack=5 after=6 flood=20000 liars=1000
else
  idle=3 attack=10 after=20 flood=100000 liars=3000
fi
attacks="flood-mute liars churn bulk bad-ids epipe blocked-stdout"
tck=$(getconf CLK_TCK)
bport=$((30000 + RANDOM % 20000))

hostile() { python3 "$PWD/scripts/hostile.py" "$@"; }
now() { echo "$EPOCHREALTIME"; }
micros() { echo "${EPOCHREALTIME/./}"; }
rand_id() { od -An -N4 -tx1 /dev/urandom | tr -d ' \n'; }
# Runs "$@" in the background, remembered for cleanup; its pid in $last.
# (Redirections of a call are opened by this shell: never a fifo here.)
spawn() { "$@" & last=$!; pids+=("$last"); }
# Starts node NAME with the loopback settings of every node here.
run_node() {
  local name=$1
  shift
  spawn "$bin" node --json --destination 127.255.255.255 --broadcast-port "$bport" \
    --interval 200ms --refresh-every 3 "$@" >"$dir/$name.json" 2>"$dir/$name.err"
}
# Starts a hostile.py server; its port in $port.
server() {
  local name=$1 i
  shift
  spawn hostile "$@" >"$dir/$name.out"
  port=
  for ((i = 0; i < 100; i++)); do
    read -r port <"$dir/$name.out" || true
    [[ -n $port ]] && return
    sleep 0.05
  done
  echo "bench-hostile: $name did not start" >&2
  exit 1
}
# Starts an attacker whose end ends the attack window; stdout to $dir/NAME.out.
attacker() {
  local name=$1
  shift
  spawn hostile "$@" >"$dir/$name.out"
  attackers+=("$last")
}
alive() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}
# Waits up to $2 s for pid $1 to exit; $took: "0.21 s", or "" if still running.
wait_exit() {
  local start us
  start=$(micros)
  took=
  while us=$(($(micros) - start)) && ((us < $2 * 1000000)); do
    if ! alive "$1"; then
      took=$(printf '%d.%02d s' $((us / 1000000)) $((us / 10000 % 100)))
      return
    fi
    sleep 0.02
  done
}
stop_all() {
  kill -KILL "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
}
# New directory and broadcast port for one attack.
prepare() {
  name=$1
  dir=$work/$col/$name
  mkdir -p "$dir"
  bport=$((bport + 1))
  a_id=$(rand_id)
  attackers=()
  echo "  [$col] $name" >&2
}
# B, and its id and port.
start_b() {
  local out
  run_node b
  out=$(hostile wait --file "$dir/b.json" --event started --print id,tcp_port)
  read -r b_id b_tcp <<<"$out"
}
# A and B; waits until A has measured B, then lets A idle. Sets t_idle and t0.
begin() {
  prepare "$1"
  run_node a --id "$a_id"
  a_pid=$last
  a_tcp=$(hostile wait --file "$dir/a.json" --event started --print tcp_port)
  spawn hostile sample --pid "$a_pid" --out "$dir/a.samples"
  start_b
  hostile wait --file "$dir/a.json" --event neighbor --id "$b_id" >/dev/null ||
    echo "bench-hostile: $name: A never measured B before the attack" >&2
  t_idle=$(now)
  sleep "$idle"
  t0=$(now)
}
# Ends the attack window once every attacker, and the $attack s timer, is done.
end_attack() {
  wait "${attackers[@]}" || true
  t1=$(now)
}
# Watches the after window, stops everything, writes the attack's figures.
finish() {
  sleep "$after"
  t2=$(now)
  stop_all
  summarize --t1 "$t1" --t2 "$t2" "$@"
}
summarize() {
  hostile summarize --out "$work/res/$col/$name.json" --a-events "$dir/a.json" \
    --b-events "$dir/b.json" --samples "$dir/a.samples" --a-id "$a_id" --b-id "$b_id" \
    --idle "$t_idle" --t0 "$t0" --clk-tck "$tck" "$@"
}
# What attacker NAME printed, less its "name: " prefix.
said() {
  local line
  line=$(cat "$dir/$1.out")
  echo "${line#*: }"
}
window() { spawn sleep "$attack"; attackers+=("$last"); }

attack_flood_mute() {
  begin flood-mute
  server mute mute-server --bind 127.0.0.66 --seconds $((attack + after + 5))
  window
  attacker flood flood --port "$bport" --count "$flood" --seconds "$attack" \
    --source 127.0.0.66 --target-port "$port"
  end_attack
  finish --note "attack: $flood fake IDs||$(said flood)"
}

attack_liars() {
  begin liars
  local lifetime=$((attack + after + 5)) random_port trickle_port
  server random liar-server --bind 127.0.0.66 --mode random --seconds "$lifetime"
  random_port=$port
  server trickle liar-server --bind 127.0.0.67 --mode trickle --seconds "$lifetime"
  trickle_port=$port
  window
  attacker flood1 flood --port "$bport" --count "$liars" --seconds "$attack" \
    --source 127.0.0.66 --target-port "$random_port"
  attacker flood2 flood --port "$bport" --count "$liars" --seconds "$attack" \
    --source 127.0.0.67 --target-port "$trickle_port"
  attacker flood3 flood --port "$bport" --count "$liars" --seconds "$attack" \
    --source 127.0.0.68 --target-port "$b_tcp"
  end_attack
  run_node c # the joiner: does A still find and measure a newcomer?
  finish --joiner-events "$dir/c.json"
}

attack_churn() {
  begin churn
  window
  attacker churn churn --target "127.0.0.1:$a_tcp" --source 127.0.0.67 --count 2000 \
    --seconds "$attack"
  end_attack
  finish --note "attack: 2000 idle clients||$(said churn)"
}

attack_bulk() {
  begin bulk
  window
  attacker bulk bulk --target "127.0.0.1:$a_tcp" --source 127.0.0.68 --clients 50 \
    --bytes 1000000 --seconds "$attack"
  attacker ordinary ordinary --target "127.0.0.1:$a_tcp" --source 127.0.0.69 --count 40 \
    --seconds $((attack * 8 / 10))
  end_attack
  finish --note "attack: 50 x 1 MB clients||$(said bulk)" \
    --note "ordinary clients during bulk|0 failed|$(cat "$dir/ordinary.out")"
}

attack_bad_ids() {
  begin bad-ids
  server mute mute-server --bind 127.0.0.66 --seconds $((attack + after + 5))
  window
  local len
  for len in 7 9 300; do
    attacker "flood$len" flood --port "$bport" --count 1000 --seconds "$attack" \
      --source 127.0.0.66 --target-port "$port" --id-len "$len"
  done
  end_attack
  finish --bad-ids
}

# `A --json | head -1` (through a fifo, to know both pids): A must notice EPIPE.
attack_epipe() {
  prepare epipe
  start_b
  mkfifo "$dir/pipe"
  node_to_fifo
  head -n 1 <"$dir/pipe" >"$dir/a.json" & # redirected in the child: a fifo blocks open()
  pids+=($!)
  wait $! || true
  wait_exit "$a_pid" 10
  local status=0 result
  if [[ -z $took ]]; then
    kill -KILL "$a_pid"
    result=">10 s (still running), killed"
  else
    wait "$a_pid" || status=$?
    result="$took, exit status $status"
  fi
  stop_all
  t_idle=0 t0=0
  summarize --notes-only --note "exit after head -1 exits|<= 1 s|$result"
}
# A with stdout into $dir/pipe; no JSON file (what it prints is the point).
node_to_fifo() {
  "$bin" node --json --destination 127.255.255.255 --broadcast-port "$bport" \
    --interval 200ms --refresh-every 3 --id "$a_id" >"$dir/pipe" 2>"$dir/a.err" &
  a_pid=$!
  pids+=("$a_pid")
}

# A's stdout is a pipe nobody reads, while fake IDs flood in: memory must stay
# bounded, B must still be served, and SIGTERM must still stop A.
attack_blocked_stdout() {
  prepare blocked-stdout
  start_b
  mkfifo "$dir/pipe"
  # shellcheck disable=SC2217 # on purpose: sleep holds the read end open, never reads
  sleep 1000 <"$dir/pipe" &
  pids+=($!)
  node_to_fifo
  spawn hostile sample --pid "$a_pid" --out "$dir/a.samples"
  hostile wait --file "$dir/b.json" --event neighbor --id "$a_id" >/dev/null ||
    echo "bench-hostile: $name: B never measured A before the attack" >&2
  t_idle=$(now)
  sleep "$idle"
  t0=$(now)
  server mute mute-server --bind 127.0.0.66 --seconds $((attack + 15))
  window
  attacker flood flood --port "$bport" --count 20000 --seconds "$attack" \
    --source 127.0.0.66 --target-port "$port"
  end_attack
  local rss result
  rss=$(tail -n 1 "$dir/a.samples" | cut -d' ' -f2)
  rss=${rss:-0}
  kill -TERM "$a_pid"
  wait_exit "$a_pid" 10
  result=${took:-">10 s, killed"}
  stop_all
  rm -f "$dir/a.json"
  summarize --t1 "$t1" --t2 "$t1" \
    --note "A RSS MB at the end of the flood|<= 2x idle|$((rss / 1024)).$((rss % 1024 * 10 / 1024))" \
    --note "exit after SIGTERM|<= 1 s|$result"
}

labels=()
for i in "${!bins[@]}"; do
  col=$((i + 1))
  bin=${bins[$i]}
  labels+=(--label "$bin")
  mkdir -p "$work/res/$col"
  echo "bench-hostile: $bin (column $col)" >&2
  for attack_name in $attacks; do
    "attack_${attack_name//-/_}"
  done
done

echo
echo "sdss node vs hostile peers on $(nproc) cores$([[ $quick -eq 1 ]] && echo ", --quick"):" \
  "idle ${idle} s, attack ${attack} s, after ${after} s; node --interval 200ms --refresh-every 3"
echo "targets: largest gap <= 3 s during a 100k-ID flood; 0 false removals under churn;" \
  "output/CPU back to normal within one refresh period (0.6 s) after a flood;" \
  "RSS <= 2x idle; exit within 1 s after EPIPE"
dirs=()
for i in "${!bins[@]}"; do dirs+=("$work/res/$((i + 1))"); done
hostile table --attacks "$attacks" "${labels[@]}" "${dirs[@]}"

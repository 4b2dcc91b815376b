#!/usr/bin/env bash
# Three sdss nodes on loopback inside a private network namespace for a few
# seconds: safe on any machine (nothing can leave the sandbox), no root needed.
#
#   scripts/demo-loopback.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-12}
cargo build --release --quiet
flags=(--net)
[[ $EUID -eq 0 ]] || flags+=(--user --map-root-user)
exec unshare "${flags[@]}" -- bash -c '
  ip link set lo up
  for i in 1 2; do
    ./target/release/sdss node -d 127.255.255.255 --interval 500ms --refresh-every 4 >/dev/null &
  done
  ./target/release/sdss node -d 127.255.255.255 --interval 500ms --refresh-every 4 --table-every 5s &
  sleep "$1"
  kill -INT $(jobs -p)
  wait
' demo "$seconds"

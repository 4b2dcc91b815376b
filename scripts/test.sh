#!/usr/bin/env bash
# Runs the whole test suite inside a private network and mount namespace, so
# that no test (and no mistake in one) can reach a real network or collide with
# another run's namespaces: nodes, labs and their /run/netns entries live and
# die inside this sandbox.
#
#   scripts/test.sh [cargo test arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--inside-sandbox" ]]; then
  shift
  mkdir -p /run/netns /run/sdss
  mount -t tmpfs -o mode=0755 sdss-test-netns /run/netns
  mount -t tmpfs -o mode=0700 sdss-test-state /run/sdss
  ip link set lo up
  rc=0
  cargo test --offline "$@" || rc=$?
  # A test that failed before its `lab down` left its lab up: its programs
  # (boxed ones in cgroups of their own) would outlive this sandbox's state.
  # Down every lab still here; one left by a test that passed fails the run.
  profile=debug
  for arg in "$@"; do [[ $arg != --release ]] || profile=release; done
  sdss="${CARGO_TARGET_DIR:-$PWD/target}/$profile/sdss"
  for dir in /run/sdss/labs/*/; do
    [[ -d $dir && -x $sdss ]] || continue
    lab=$(basename "$dir")
    echo "test.sh: lab $lab was left up by a test: downing it" >&2
    "$sdss" lab down "$lab" >&2 || echo "test.sh: could not down lab $lab" >&2
    [[ $rc -ne 0 ]] || rc=1
  done
  exit "$rc"
fi

# Build first, with the network, so the sandboxed run only executes.
cargo test --no-run --quiet "$@"
unshare_flags=(--net --mount --propagation private)
if [[ $EUID -ne 0 ]]; then
  echo "test.sh: not root: running in a user namespace; tests that need real root will skip" >&2
  unshare_flags+=(--user --map-root-user)
fi
exec unshare "${unshare_flags[@]}" -- "$0" --inside-sandbox "$@"

#!/usr/bin/env bash
# Hunts flaky tests: runs the tests whose outcome depends on time (real nodes,
# labs, the link emulator) N times, each round inside scripts/test.sh's private
# namespaces, with one core kept busy by a CPU hog the whole time (a CI machine
# is shared: load beside a run is normal), and prints each test's failures.
#
#   scripts/flake-hunt.sh [--runs N] [--no-hog] [--test NAME]... [-- cargo test filter]
#
# --runs N     rounds (default 10)
# --test NAME  an integration test file to hunt in (repeatable; default: the
#              unit tests and every integration test that runs nodes, labs or
#              the emulator)
# --no-hog     no CPU hog (to tell load from logic)
# The failing rounds' output is kept in target/flake-hunt/ROUND.log.
# Target: 0 failures in 10 rounds. Needs what scripts/test.sh needs (root for
# the lab tests). Exit 1 when any test failed in any round.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=10
hog=1
tests=()
filter=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs="$2"; shift ;;
    --no-hog) hog=0 ;;
    --test) tests+=("$2"); shift ;;
    --) shift; filter=("$@"); break ;;
    *) echo "usage: $0 [--runs N] [--no-hog] [--test NAME]... [-- FILTER]" >&2; exit 2 ;;
  esac
  shift
done
explicit=$((${#tests[@]} > 0))
if ((!explicit)); then
  # Every integration test that starts real nodes, labs or the emulator; the
  # pure ones (lab files, man pages) cannot flake on time.
  for file in tests/*.rs; do
    name=$(basename "$file" .rs)
    case "$name" in lab_file | manual) ;; *) tests+=("$name") ;; esac
  done
fi
build=()
for name in "${tests[@]}"; do build+=(--test "$name"); done
# By default the unit tests too: some time a node's exchanges on loopback.
((explicit)) || build+=(--lib)
args=("${build[@]}")
if ((${#filter[@]})); then args+=(-- "${filter[@]}"); fi

logs=${CARGO_TARGET_DIR:-target}/flake-hunt
rm -rf "$logs"
mkdir -p "$logs"

hog_pid=""
stop_hog() {
  if [[ -n "$hog_pid" ]]; then
    kill "$hog_pid" 2>/dev/null || true
    wait "$hog_pid" 2>/dev/null || true
    hog_pid=""
  fi
}
trap stop_hog EXIT INT TERM

# Build once, outside the rounds (and outside the hog).
cargo test --no-run --quiet "${build[@]}"

if ((hog)); then
  # One core busy: a shell loop pinned to CPU 0, at normal priority, for as
  # long as the hunt runs.
  taskset -c 0 bash -c 'while :; do :; done' &
  hog_pid=$!
fi

declare -A failures=()
passed_rounds=0
started=$SECONDS
for round in $(seq 1 "$runs"); do
  log="$logs/$round.log"
  t0=$SECONDS
  status=0
  scripts/test.sh --no-fail-fast "${args[@]}" >"$log" 2>&1 || status=$?
  failed=$(sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$log" | sort -u)
  ran=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
  if [[ -z "$failed" && $status -eq 0 ]]; then
    passed_rounds=$((passed_rounds + 1))
    rm -f "$log"
    printf 'round %2d: %d passed, 0 failed (%d s)\n' "$round" "$ran" $((SECONDS - t0))
  else
    for test in $failed; do failures[$test]=$((${failures[$test]:-0} + 1)); done
    [[ -n "$failed" ]] || failures["(exit $status, no test named)"]=$((${failures["(exit $status, no test named)"]:-0} + 1))
    printf 'round %2d: %d passed, FAILED: %s (%d s; %s)\n' "$round" "$ran" \
      "$(echo ${failed:-"exit $status"})" $((SECONDS - t0)) "$log"
  fi
done
stop_hog

echo
echo "flake hunt: $runs rounds of ${#tests[@]} test files, $( ((hog)) && echo 'one core kept busy' || echo 'no hog'), $((SECONDS - started)) s"
if ((${#failures[@]} == 0)); then
  echo "no test failed: $passed_rounds of $runs rounds green"
  exit 0
fi
for test in "${!failures[@]}"; do
  printf '  %2d of %d  %s\n' "${failures[$test]}" "$runs" "$test"
done | sort -rn
echo "$passed_rounds of $runs rounds green"
exit 1

#!/usr/bin/env bash
# A/B runs against endpoints that are already running (two builds of hive, twemproxy, a Redis
# node), interleaved over ROUNDS rounds. Prints each endpoint's median req/s and, when a pid is
# given, its CPU seconds per million requests (from /proc). The order rotates every round.
# BENCH_CPU=N runs redis-benchmark on CPU N only (ab_builds.sh's PIN=1 sets it).
# Judges nothing.
# Usage: bash benches/ab.sh ROUNDS TEST PIPELINE NAME:PORT[:PID] ...
#   e.g. bash benches/ab.sh 5 get 1 old:7761:1234 new:7763:1240 nut:7762:1100
set -euo pipefail
[ $# -ge 4 ] || { sed -n 2,6p "$0"; exit 2; }
ROUNDS=$1 TEST=$2 P=$3
shift 3
n=100000
[ "$P" -ge 16 ] && n=400000
. "$(dirname "$0")/lib.sh"
declare -A RPS CPU
EPS=("$@")
for r in $(seq "$ROUNDS"); do
  # Each round starts at the next endpoint, so no endpoint always runs first (on a loaded
  # deployment, later runs in a round read lower: AOF growth, memory).
  for k in $(seq 0 $((${#EPS[@]} - 1))); do
    e=${EPS[$(( (k + r) % ${#EPS[@]} ))]}
    IFS=: read -r name port pid <<<"$e"
    b=$(cpu_ticks "${pid:-0}")
    rps=$(${BENCH_CPU:+taskset -c "$BENCH_CPU"} redis-benchmark -p "$port" -t "$TEST" -n "$n" -r 100000 -d 64 -c 50 -P "$P" --csv 2>/dev/null \
      | tail -1 | tr -d '"' | cut -d, -f2)
    a=$(cpu_ticks "${pid:-0}")
    RPS[$name]+="$rps "
    CPU[$name]+="$(echo "($a - $b) / $TICK / $n * 1000000" | bc -l) "
  done
done
for e in "$@"; do
  IFS=: read -r name _ pid <<<"$e"
  printf '%-10s %s P%s %10.0f req/s' "$name" "$TEST" "$P" "$(echo "${RPS[$name]}" | median)"
  [ "${pid:-0}" != 0 ] && printf '  cpu %5.2f s/M' "$(echo "${CPU[$name]}" | median)"
  printf '   rounds: %s\n' "${RPS[$name]}"
done

#!/usr/bin/env bash
# Instructions per request of two hive builds (valgrind's callgrind, user space), in static mode
# in front of the same 3 masters, one worker thread each. Instruction counts hardly move with the
# machine's noise (req/s and CPU seconds move by up to 7% between two identical proxies here), so
# a per-request cost of 1-3% shows. Per request = (run with N requests - run with none) / N, from
# one client (see below). SPECS="get:1 set:16" picks the tests.
# Usage: bash benches/instructions_ab.sh OLD_HIVE_BINARY NEW_HIVE_BINARY [rounds] [-- new proxy flags]
#   e.g. bash benches/instructions_ab.sh ../base/target/release/hive target/release/hive 3 -- --admin 127.0.0.1:7790
set -uo pipefail
[ $# -ge 2 ] || { sed -n 2,8p "$0"; exit 2; }
OLD=$(realpath "$1") NEW=$(realpath "$2") ROUNDS=${3:-3}
shift 2; [ $# -gt 0 ] && shift; [ "${1:-}" = "--" ] && shift
EXTRA=("$@")
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)"; exit 2; }
. "$(dirname "$0")/lib.sh"
start_masters
sleep 1
# Set here, so the binary does not re-execute itself to set them (malloc.rs) under valgrind.
export MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072
# ir BIN REQUESTS PIPELINE TEST [flags]: the proxy's total instructions for one run.
ir() {
  local bin=$1 n=$2 p=$3 test=$4; shift 4
  valgrind --tool=callgrind --callgrind-out-file="$T/cg" "$bin" proxy --threads 1 \
    --static 127.0.0.1:7750,127.0.0.1:7751,127.0.0.1:7752 --listen 127.0.0.1:7781 "$@" >"$T/log" 2>&1 &
  local vp=$!
  for _ in $(seq 150); do redis-cli -p 7781 ping >/dev/null 2>&1 && break; sleep 0.2; done
  # Count from here: start-up work that depends on time (the request clock's calibration
  # loops until it is stable, a few million instructions that vary from run to run under
  # valgrind) would otherwise land in one run of a pair and not the other.
  callgrind_control -z $vp >/dev/null 2>&1
  # One client: every batch holds exactly P requests, so the counts compare the same work (with
  # many clients a slower build batches more and looks cheaper).
  [ "$n" -gt 0 ] && redis-benchmark -p 7781 -t "$test" -n "$n" -r 100000 -d 64 -c 1 -P "$p" -q >/dev/null 2>&1
  # Let the proxy install its signal handlers first (a SIGINT before that went unanswered).
  sleep 1
  kill -INT $vp; wait $vp
  awk '/^(summary|totals):/ {print $2; exit}' "$T/cg"
}
# 40,000 requests: with 5,000 the idle work of each run (polls while valgrind runs slowly)
# spread the per-request counts by ±12-30% between rounds.
N=${N:-40000}
for spec in ${SPECS:-get:1 set:1 get:16 set:16}; do
  IFS=: read -r test p <<<"$spec"
  o=""; w=""
  for _ in $(seq "$ROUNDS"); do
    o+="$(( ($(ir "$OLD" $N "$p" "$test") - $(ir "$OLD" 0 "$p" "$test")) / N )) "
    w+="$(( ($(ir "$NEW" $N "$p" "$test" "${EXTRA[@]}") - $(ir "$NEW" 0 "$p" "$test" "${EXTRA[@]}")) / N )) "
  done
  mo=$(echo "$o" | median); mw=$(echo "$w" | median)
  printf '%s P%-2s  old %6.0f  new %6.0f instructions/request  new/old %.3f   (old: %s new: %s)\n' \
    "$test" "$p" "$mo" "$mw" "$(echo "$mw / $mo" | bc -l)" "$o" "$w"
done

#!/usr/bin/env bash
# A fleet of three Hives against one Hive, in front of the same 3+3 cluster: against the fleet,
# `redis-benchmark --cluster` reads CLUSTER SLOTS from one Hive and spreads its 50 clients'
# requests over the three Hives it lists; against one Hive, the same 50 clients all go to it
# (what a cluster client does with a one-node map; redis-benchmark --cluster refuses one).
# Targets interleaved over ROUNDS rounds; prints medians, the ratio fleet / one Hive, and the CPU
# seconds per million requests of the proxies. Judges nothing.
# Usage: bash benches/fleet.sh [rounds] [--json]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
ROUNDS=${1:-3}
JSON=0; for a in "$@"; do [ "$a" = "--json" ] && JSON=1; done
start_hive_up fleet 7740 7769
HIVE=$PWD/target/release/hive
# One Hive with the machine's two worker threads; three Hives of one thread each.
"$HIVE" proxy --cluster 127.0.0.1:7740 --listen 127.0.0.1:7770 >"$dir/solo.log" 2>&1 &
SOLO=$!; BG+=($SOLO)
FLEET=()
for p in 7771 7772 7773; do
  printf '[proxy]\nthreads = 1\nfleet = ["127.0.0.1:7771", "127.0.0.1:7772", "127.0.0.1:7773"]\n' >"$dir/f$p.toml"
  "$HIVE" proxy --config "$dir/f$p.toml" --cluster 127.0.0.1:7740 --listen 127.0.0.1:$p >"$dir/f$p.log" 2>&1 &
  FLEET+=($!); BG+=($!)
done
for _ in $(seq 1 100); do
  [ "$(redis-cli -p 7771 cluster info 2>/dev/null | tr -d '\r' | grep -c 'cluster_known_nodes:3')" = 1 ] \
    && redis-cli -p 7770 ping >/dev/null 2>&1 && break
  sleep 0.2
done
redis-cli -p 7771 cluster info | grep -q 'cluster_known_nodes:3' || { echo "the fleet did not form" >&2; exit 1; }

declare -A RPS_OF TICKS_OF
run() { # target test pipeline: appends requests/s to RPS_OF[target/test/P], the proxies' CPU ticks to TICKS_OF
  local t=$1 test=$2 p=$3 port pids before after line
  # redis-benchmark --cluster refuses a one-node cluster; a cluster client against one Hive
  # sends everything to it, as a plain run does.
  local cluster=()
  if [ "$t" = solo ]; then port=7770; pids=($SOLO); else port=7771; pids=("${FLEET[@]}"); cluster=(--cluster); fi
  before=0; for x in "${pids[@]}"; do before=$((before + $(cpu_ticks "$x"))); done
  line=$(redis-benchmark "${cluster[@]}" -p "$port" -t "$test" -n 200000 -r 100000 -d 64 -c 50 -P "$p" --csv 2>/dev/null | grep -i "\"$test\"" | tail -1)
  after=0; for x in "${pids[@]}"; do after=$((after + $(cpu_ticks "$x"))); done
  TICKS_OF[$t/$test/$p]="${TICKS_OF[$t/$test/$p]:-} $(( after - before ))"
  RPS_OF[$t/$test/$p]="${RPS_OF[$t/$test/$p]:-} $(echo "$line" | cut -d, -f2 | tr -d '"')"
}
for r in $(seq 1 "$ROUNDS"); do
  for p in 1 16; do
    for test in set get; do
      for t in solo fleet; do
        run $t $test $p
      done
    done
  done
  [ $JSON = 1 ] || echo "round $r of $ROUNDS done" >&2
done
rows=()
for p in 1 16; do
  for test in set get; do
    s=$(echo "${RPS_OF[solo/$test/$p]}" | median); f=$(echo "${RPS_OF[fleet/$test/$p]}" | median)
    cs=$(echo "${TICKS_OF[solo/$test/$p]}" | median); cf=$(echo "${TICKS_OF[fleet/$test/$p]}" | median)
    rows+=("$(python3 -c "
s,f,cs,cf,t=$s,$f,$cs,$cf,$TICK
print('${test^^} P$p', round(s), round(f), round(f/s,3), round(cs/t/0.2,2), round(cf/t/0.2,2))")")
  done
done
if [ $JSON = 1 ]; then
  printf '%s\n' "${rows[@]}" | python3 -c '
import json,sys
out=[]
for l in sys.stdin:
    c,p,s,f,r,cs,cf=l.split()
    out.append({"cell":c+" "+p,"one_hive_rps":int(s),"fleet_rps":int(f),"ratio":float(r),"cpu_s_per_m_one":float(cs),"cpu_s_per_m_fleet":float(cf)})
print(json.dumps({"rounds":'"$ROUNDS"',"rows":out}))'
else
  echo "redis-benchmark -c 50 -d 64 -r 100000 -n 200000 (--cluster against the fleet), median of $ROUNDS interleaved rounds"
  printf '%-8s %12s %12s %7s %14s %14s\n' cell one_hive fleet_of_3 ratio cpu_s/M_one cpu_s/M_fleet
  printf '%s\n' "${rows[@]}" | awk '{printf "%-8s %12s %12s %7s %14s %14s\n", $1" "$2, $3, $4, $5, $6, $7}'
fi

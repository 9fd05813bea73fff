#!/usr/bin/env bash
# Commands across slots (issue 15): SUNION of two 1,000-member sets on different shards,
# emulated by a proxy with proxy.cross_slot = "emulate" in front of a local 3+3 cluster, against
# the same SUNION on one standalone redis-server holding both sets, interleaved over ROUNDS
# rounds (50 clients, no pipelining). Prints each endpoint's median req/s and the ratio.
# Usage: bash benches/cross_slot.sh [rounds]
set -uo pipefail
ROUNDS=${1:-3}
N=${N:-20000}
cd "$(dirname "$0")/.."
. benches/lib.sh
start_hive_up cross 7500 7580
HIVE=target/release/hive
sed -e 's/^listen = .*/listen = "127.0.0.1:7581"/' \
    -e 's/^cross_slot = .*/cross_slot = "emulate"/' "$dir/hive.toml" >"$dir/emulate.toml"
$HIVE proxy --config "$dir/emulate.toml" >"$dir/emulate.log" 2>&1 & BG+=($!)
redis-server --port 7590 --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
  --logfile "$dir/single.log" & BG+=($!)
sleep 2
# "a" (slot 15495) and "b" (slot 3300) are on different masters of a 3-master cluster.
for port in 7581 7590; do
  for k in a b; do
    seq 1 1000 | sed "s/^/SADD $k $k/" | redis-cli -p $port >/dev/null
  done
done
[ "$(redis-cli -p 7581 sunion a b | wc -l)" = 2000 ] || { echo "SUNION through Hive is wrong" >&2; exit 1; }
declare -A RPS
for _ in $(seq "$ROUNDS"); do
  for e in single:7590 hive-emulated:7581; do
    IFS=: read -r name port <<<"$e"
    rps=$(redis-benchmark -p "$port" -n "$N" -c 50 --csv SUNION a b 2>/dev/null \
      | tail -1 | tr -d '"' | cut -d, -f2)
    RPS[$name]+="$rps "
  done
done
s=$(echo "${RPS[single]}" | median) h=$(echo "${RPS[hive-emulated]}" | median)
printf '%-16s %12s   rounds\n' endpoint 'SUNION req/s'
printf '%-16s %12.0f   %s\n' single-redis "$s" "${RPS[single]}" hive-emulated "$h" "${RPS[hive-emulated]}"
printf 'ratio hive-emulated / single-redis: %.2f\n' "$(echo "$h / $s" | bc -l)"

#!/usr/bin/env bash
# Does a crowd of blocked clients slow everyone else down? GET/SET throughput of 50 clients
# through `hive up` (3+3 cluster), alone and with 200 more clients blocked in BLPOP, interleaved
# over ROUNDS rounds. Prints the medians and their ratio; judges nothing.
# Usage: bash benches/blocking.sh [ROUNDS]
set -euo pipefail
ROUNDS=${1:-3}
cd "$(dirname "$0")/.."
PROXY_PORT=6580
. benches/lib.sh
start_hive_up blocking 7300 "$PROXY_PORT"

load() { # prints "<set rps> <get rps>"
  redis-benchmark -h 127.0.0.1 -p "$PROXY_PORT" -t set,get -n 200000 -r 100000 -d 64 -c 50 --csv \
    | awk -F'","' '/^"SET"/{s=$2} /^"GET"/{g=$2} END{print s+0, g+0}'
}
clients() { redis-cli -p "$PROXY_PORT" info | awk -F: '/^connected_clients/{print $2+0; exit}'; }

base_set=(); base_get=(); blk_set=(); blk_get=()
for r in $(seq 1 "$ROUNDS"); do
  read -r s g < <(load); base_set+=("$s"); base_get+=("$g")
  # 200 clients, one BLPOP each on keys nobody pushes to: they stay blocked.
  timeout 600 redis-benchmark -h 127.0.0.1 -p "$PROXY_PORT" -c 200 -n 200 -r 100000 \
    BLPOP "blk:__rand_int__" 0 >/dev/null 2>&1 &
  BLOCKED=$!
  BG=("$BLOCKED")
  for _ in $(seq 1 50); do [ "$(clients)" -ge 200 ] && break; sleep 0.1; done
  n=$(clients)
  read -r s g < <(load); blk_set+=("$s"); blk_get+=("$g")
  kill "$BLOCKED" 2>/dev/null || true; wait "$BLOCKED" 2>/dev/null || true; BG=()
  echo "round $r: alone SET ${base_set[-1]} GET ${base_get[-1]} | with $n clients connected (200 blocked) SET $s GET $g"
done
bs=$(echo "${base_set[@]}" | median); bg=$(echo "${base_get[@]}" | median)
ks=$(echo "${blk_set[@]}" | median); kg=$(echo "${blk_get[@]}" | median)
echo "median req/s  alone: SET $bs GET $bg"
echo "median req/s  with 200 blocked: SET $ks GET $kg"
awk -v a="$ks" -v b="$bs" -v c="$kg" -v d="$bg" 'BEGIN{printf "ratio (blocked/alone): SET %.3f GET %.3f\n", a/b, c/d}'

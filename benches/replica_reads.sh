#!/usr/bin/env bash
# Reads from replicas (issue 16): GET P1 and P16 through two proxies in front of the same local
# 3+3 cluster with hive-module, one with backend.read_from = "master" and one with
# "prefer-replica", interleaved over ROUNDS rounds, beside redis-benchmark --cluster straight to
# the nodes. Prints each endpoint's median req/s and the CPU seconds per million GETs spent by
# the masters, the replicas and the proxy (from /proc). Judges nothing.
# Usage: bash benches/replica_reads.sh [rounds]
set -uo pipefail
ROUNDS=${1:-5}
cd "$(dirname "$0")/.."
. benches/lib.sh
start_hive_up replicas 7400 7480
HIVE=target/release/hive
# Two more proxies from the config `hive up` wrote, differing only in read_from.
for e in master:7481 prefer-replica:7482; do
  IFS=: read -r rf port <<<"$e"
  sed -e "s/^listen = .*/listen = \"127.0.0.1:$port\"/" \
      -e "s/^read_from = .*/read_from = \"$rf\"/" "$dir/hive.toml" >"$dir/$rf.toml"
  $HIVE proxy --config "$dir/$rf.toml" >"$dir/$rf.log" 2>&1 & BG+=($!)
done
MASTER_PID=${BG[0]} REPLICA_PID=${BG[1]}
sleep 2
pid_of() { redis-cli -p "$1" info server | tr -d '\r' | awk -F: '$1 == "process_id" {print $2}'; }
MASTERS=() REPLICAS=()
for p in 7400 7401 7402 7403 7404 7405; do
  role=$(redis-cli -p "$p" info replication | tr -d '\r' | awk -F: '$1 == "role" {print $2}')
  if [ "$role" = master ]; then MASTERS+=("$(pid_of "$p")"); else REPLICAS+=("$(pid_of "$p")"); fi
done
ticks() { local t=0; for p in "$@"; do t=$((t + $(cpu_ticks "$p"))); done; echo $t; }
redis-benchmark -p 7481 -t set -n 100000 -r 100000 -d 64 -c 50 -P 16 -q >/dev/null
sleep 1
declare -A RPS MCPU RCPU PCPU
for P in 1 16; do
  n=100000
  [ "$P" -ge 16 ] && n=400000
  for _ in $(seq "$ROUNDS"); do
    for e in direct:7400:0 master:7481:$MASTER_PID prefer-replica:7482:$REPLICA_PID; do
      IFS=: read -r name port pid <<<"$e"
      cluster=""
      [ "$name" = direct ] && cluster=--cluster
      m0=$(ticks "${MASTERS[@]}") r0=$(ticks "${REPLICAS[@]}") p0=$(cpu_ticks "$pid")
      rps=$(redis-benchmark -p "$port" $cluster -t get -n "$n" -r 100000 -d 64 -c 50 -P "$P" --csv 2>/dev/null \
        | grep '"GET"' | tail -1 | tr -d '"' | cut -d, -f2)
      m1=$(ticks "${MASTERS[@]}") r1=$(ticks "${REPLICAS[@]}") p1=$(cpu_ticks "$pid")
      k="$name P$P"
      RPS[$k]+="$rps "
      MCPU[$k]+="$(echo "($m1 - $m0) / $TICK / $n * 1000000" | bc -l) "
      RCPU[$k]+="$(echo "($r1 - $r0) / $TICK / $n * 1000000" | bc -l) "
      PCPU[$k]+="$(echo "($p1 - $p0) / $TICK / $n * 1000000" | bc -l) "
    done
  done
done
printf '%-22s %12s %14s %15s %13s\n' endpoint 'GET req/s' 'masters s/M' 'replicas s/M' 'proxy s/M'
for P in 1 16; do
  for name in direct master prefer-replica; do
    k="$name P$P"
    printf '%-22s %12.0f %14.2f %15.2f %13.2f   rounds: %s\n' "$k" \
      "$(echo "${RPS[$k]}" | median)" "$(echo "${MCPU[$k]}" | median)" \
      "$(echo "${RCPU[$k]}" | median)" "$(echo "${PCPU[$k]}" | median)" "${RPS[$k]}"
  done
  a=$(echo "${RPS[master P$P]}" | median) b=$(echo "${RPS[prefer-replica P$P]}" | median)
  d=$(echo "${RPS[direct P$P]}" | median)
  printf 'P%s ratios: prefer-replica/master %.2f, master/direct %.2f, prefer-replica/direct %.2f\n' \
    "$P" "$(echo "$b / $a" | bc -l)" "$(echo "$a / $d" | bc -l)" "$(echo "$b / $d" | bc -l)"
done

#!/usr/bin/env bash
# The cost of backend.write_ack = "replica": SET and MSET (10 keys) at P1 and P16, in cluster
# and sentinel modes. Two proxies in front of one `hive up` deployment of each mode, one with
# write_ack = "node" (the default) and one with "replica", measured interleaved by
# benches/ab.sh; prints each pair and the ratio replica / node. Judges nothing.
# Usage: bash benches/write_ack.sh [rounds] [--json]
set -uo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
JSON=0; for a in "$@"; do [ "$a" = --json ] && JSON=1; done
. benches/lib.sh
cargo build --release -q -p hive-cli -p hive-module
HIVE=$PWD/target/release/hive
# Ports: nodes 7920-7925, sentinels 7926-7928, hive up's own proxy 7930, node 7931, replica 7932.
for p in 7920 7926 7930 7931 7932; do
  if redis-cli -p $p ping >/dev/null 2>&1; then echo "port $p is taken: stop what runs there first" >&2; exit 1; fi
done
TMP=$(mktemp -d /tmp/hive-write-ack.XXXXXX)
printf '[backend]\nwrite_ack = "replica"\n' >"$TMP/replica.toml"
PX=() UP=
stop() {
  for p in "${PX[@]}"; do kill "$p" 2>/dev/null; done
  [ -n "$UP" ] && kill -INT "$UP" 2>/dev/null
  wait 2>/dev/null
  PX=() UP=
}
trap 'stop; rm -rf "$TMP"' EXIT
ROWS=()
for mode in cluster sentinel; do
  mkdir -p "$TMP/$mode"
  "$HIVE" up --mode "$mode" --port 7920 --listen 127.0.0.1:7930 --dir "$TMP/$mode" >"$TMP/$mode/up.log" 2>&1 & UP=$!
  for _ in $(seq 120); do redis-cli -p 7930 set ready 1 >/dev/null 2>&1 && break; sleep 0.5; done
  redis-cli -p 7930 set ready 1 >/dev/null 2>&1 || { cat "$TMP/$mode/up.log"; echo "hive up --mode $mode did not start" >&2; exit 1; }
  if [ "$mode" = cluster ]; then
    SEEDS=(--cluster 127.0.0.1:7920,127.0.0.1:7921,127.0.0.1:7922)
  else
    SEEDS=(--sentinel 127.0.0.1:7926,127.0.0.1:7927,127.0.0.1:7928 --masters hive-a,hive-b,hive-c)
  fi
  "$HIVE" proxy "${SEEDS[@]}" --listen 127.0.0.1:7931 >"$TMP/$mode/node.log" 2>&1 & N=$!; PX+=($N)
  "$HIVE" proxy --config "$TMP/replica.toml" "${SEEDS[@]}" --listen 127.0.0.1:7932 >"$TMP/$mode/replica.log" 2>&1 & R=$!; PX+=($R)
  for p in 7931 7932; do
    for _ in $(seq 100); do redis-cli -p $p set ready 1 >/dev/null 2>&1 && break; sleep 0.2; done
  done
  redis-cli -p 7932 info proxy | grep -q '^write_ack:replica' || { echo "the replica proxy does not run write_ack = replica" >&2; exit 1; }
  for spec in set:1 set:16 mset:1 mset:16; do
    out=$(bash benches/ab.sh "$ROUNDS" ${spec/:/ } node:7931:$N replica:7932:$R)
    [ "$JSON" = 1 ] || echo "$out"
    node=$(echo "$out" | awk '$1 == "node" {print $4}')
    rep=$(echo "$out" | awk '$1 == "replica" {print $4}')
    ratio=$(echo "scale=3; $rep / $node" | bc -l)
    [ "$JSON" = 1 ] || printf '%s %s: replica / node = %.2f\n' "$mode" "$spec" "$ratio"
    ROWS+=("{\"mode\":\"$mode\",\"test\":\"${spec%:*}\",\"pipeline\":${spec#*:},\"node_rps\":$node,\"replica_rps\":$rep,\"ratio\":$ratio}")
  done
  waits=$(redis-cli -p 7932 info proxy | awk -F: '$1 == "write_ack_waits" {print $2}' | tr -d '\r')
  [ "$JSON" = 1 ] || echo "$mode: the replica proxy sent $waits WAITs"
  stop
done
if [ "$JSON" = 1 ]; then
  (IFS=,; echo "[${ROWS[*]}]")
fi

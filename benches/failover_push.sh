#!/usr/bin/env bash
# The failover push (issue 16): `hive drill failover` (graceful: CLUSTER FAILOVER or SENTINEL
# FAILOVER of the first shard) through two proxies in front of the same local deployment with
# hive-module, one following __hive__:events (backend.failover_push = true) and one not,
# alternating over ROUNDS rounds, in cluster and sentinel modes. Prints, per mode and proxy, the
# median time from the promotion (the promoted node's event) to the first successful write
# through the proxy, and the median write outage. Judges nothing.
# Usage: bash benches/failover_push.sh [rounds]
set -uo pipefail
ROUNDS=${1:-3}
cd "$(dirname "$0")/.."
. benches/lib.sh
HIVE=target/release/hive
field() { awk -v l="$1" 'index($0, l) {sub(".*" l " *", ""); print $1}'; }
run_mode() {
  local mode=$1 base=$2
  start_hive_up "push-$mode" "$base" $((base + 80)) "$mode"
  for e in on:$((base + 81)):true off:$((base + 82)):false; do
    IFS=: read -r name port push <<<"$e"
    sed -e "s/^listen = .*/listen = \"127.0.0.1:$port\"/" \
        -e "s/^failover_push = .*/failover_push = $push/" "$dir/hive.toml" >"$dir/$name.toml"
    $HIVE proxy --config "$dir/$name.toml" >"$dir/$name.log" 2>&1 & BG+=($!)
  done
  # Until Sentinel lists every replica (it learns them from INFO every 10 s), and the
  # subscriptions are made.
  for _ in $(seq 60); do
    redis-cli -p $((base + 81)) info proxy | grep -q 'replicas=,' || break
    sleep 1
  done
  sleep 3
  declare -A P2W OUT
  local k=0
  for r in $(seq "$ROUNDS"); do
    for e in on:$((base + 81)) off:$((base + 82)); do
      IFS=: read -r name port <<<"$e"
      # Sentinel refuses a second failover of a group soon after the first: rotate the groups.
      group=()
      [ "$mode" = sentinel ] && group=(--group "hive-$(echo abc | cut -c$((k % 3 + 1)))")
      k=$((k + 1))
      report=$($HIVE drill failover --proxy "127.0.0.1:$port" "${group[@]}" --duration 8 --writers 2 2>&1)
      p2w=$(echo "$report" | field 'promotion -> write:')
      out=$(echo "$report" | field 'write outage:')
      echo "$mode round $r push $name: promotion->write ${p2w:-?} ms, outage ${out:-?} ms" >&2
      P2W[$name]+="${p2w:-} " OUT[$name]+="${out:-} "
      sleep 2
    done
  done
  for name in on off; do
    printf '%-9s push %-3s promotion->write %6s ms   outage %6s ms   rounds: %s\n' "$mode" "$name" \
      "$(echo "${P2W[$name]}" | median)" "$(echo "${OUT[$name]}" | median)" "${P2W[$name]}"
  done
  stop_hive_up
  BG=() UP="" dir=""
}
run_mode cluster 7600
run_mode sentinel 7700

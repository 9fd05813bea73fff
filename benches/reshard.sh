#!/usr/bin/env bash
# The resharding benchmark (issue 28), on `hive up`'s 3+3 cluster with hive-module and Hive in
# front, KEYS keys of 64 bytes (zipf_load --preload), three spare empty cluster nodes:
#   1. the load alone: 50 clients through Hive, 90% GET / 10% SET, zipfian keys, 5 s
#   2. `hive add-shard` of spare 1, then `hive rebalance` under the same load; the load runs
#      exactly as long as the move (--stop-file). Then `hive remove-shard` of it, same load.
#   3. the same add + rebalance with no load, for the move's own speed (spare 2), removed again;
#      and again at --pace 100 (full speed: the default, 35, works a third of the time) (spare 4)
#   4. redis-cli --cluster add-node (spare 3) + rebalance --cluster-use-empty-masters on the
#      same cluster and data: keys/s, and MB/s counted with the bytes per key Hive's plan saw
# Prints keys/s and MB/s of both tools and their ratio, and the load's throughput, p99 round
# trip and errors before and during each move. Judges nothing: exits non-zero only when it
# cannot run.
# Usage: [PACE=1-100] bash benches/reshard.sh [KEYS] [--json]   (PACE: the moves under load)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
KEYS=1000000 JSON=0
for a in "$@"; do case $a in --json) JSON=1 ;; *) KEYS=$a ;; esac; done
log() { [ $JSON = 1 ] || echo "$@" >&2; }
cargo build -q --release -p hive-benches --example zipf_load
start_hive_up reshard 7900 7990
HIVE=${HIVE_TOOL:-$PWD/target/release/hive}
LOAD=("$PWD/target/release/examples/zipf_load" --addr 127.0.0.1:7990 --keys "$KEYS" --reads 0.9)
SO=$PWD/target/release/libhive_module.so
SEED=127.0.0.1:7900
for p in 7910 7911 7912 7913; do
  redis-server --port $p --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file "nodes-$p.conf" \
    --cluster-node-timeout 5000 --dir "$dir" --dbfilename "dump-$p.rdb" --save '' --appendonly no \
    --loadmodule "$SO" --logfile "$dir/spare-$p.log" &
  BG+=($!)
done
for p in 7910 7911 7912 7913; do
  for _ in $(seq 100); do redis-cli -p $p ping >/dev/null 2>&1 && break; sleep 0.1; done
done

log "preloading $KEYS keys through Hive"
"${LOAD[@]}" --preload >/dev/null 2>&1
before=$("${LOAD[@]}" --seconds 5 --json)
log "load alone: $(json_get "$before" "['ops_per_sec']") ops/s, p99 $(json_get "$before" "['p99_us']") us"

PACE=(${PACE:+--pace "$PACE"})
proxy_counts() {
  redis-cli -p 7990 info | tr -d '\r' | awk -F: '/^(moved_redirects|ask_redirects|tryagain_waits|topology_refreshes):/ {printf "\"%s\":%s,", $1, $2}' | sed 's/,$//; s/^/{/; s/$/}/'
}
redis-cli -p 7990 config resetstat >/dev/null
"$HIVE" add-shard --cluster $SEED 127.0.0.1:7910 >/dev/null
log "hive rebalance under load"
under_load "$HIVE" rebalance --cluster $SEED --json "${PACE[@]}"
grow=$MOVE_OUT grow_load=$LOAD_OUT
log "  $(json_get "$grow" "['outcome']['keys_per_sec']") keys/s; load $(json_get "$grow_load" "['ops_per_sec']") ops/s, p99 $(json_get "$grow_load" "['p99_us']") us, errors $(json_get "$grow_load" "['errors']")"
log "hive remove-shard under load"
under_load "$HIVE" remove-shard --cluster $SEED 127.0.0.1:7910 --json "${PACE[@]}"
shrink=$MOVE_OUT shrink_load=$LOAD_OUT
counts=$(proxy_counts)
log "  the proxy during both moves: $counts"

"$HIVE" add-shard --cluster $SEED 127.0.0.1:7911 >/dev/null
log "hive rebalance, no load"
quiet=$("$HIVE" rebalance --cluster $SEED --json)
"$HIVE" remove-shard --cluster $SEED 127.0.0.1:7911 --json >/dev/null
"$HIVE" add-shard --cluster $SEED 127.0.0.1:7913 >/dev/null
log "hive rebalance --pace 100, no load"
full=$("$HIVE" rebalance --cluster $SEED --pace 100 --json)
"$HIVE" remove-shard --cluster $SEED 127.0.0.1:7913 --pace 100 --json >/dev/null

log "redis-cli --cluster rebalance, no load"
redis-cli --cluster add-node 127.0.0.1:7912 $SEED >/dev/null
for _ in $(seq 200); do
  redis-cli -p 7912 cluster info | grep -q 'cluster_state:ok' && break
  sleep 0.1
done
t0=$(date +%s.%N)
redis-cli --cluster rebalance $SEED --cluster-use-empty-masters >"$dir/redis-cli.out" 2>&1
t1=$(date +%s.%N)
cli_keys=$(redis-cli -p 7912 dbsize)

python3 - "$before" "$grow" "$grow_load" "$shrink" "$shrink_load" "$quiet" "$full" "$cli_keys" "$t0" "$t1" "$JSON" "$KEYS" "$counts" <<'EOF'
import json, sys
before, grow, grow_load, shrink, shrink_load, quiet, full = (json.loads(a) for a in sys.argv[1:8])
cli_keys, t0, t1, as_json, keys = int(sys.argv[8]), float(sys.argv[9]), float(sys.argv[10]), sys.argv[11] == "1", int(sys.argv[12])
counts = json.loads(sys.argv[13])
q, f = quiet["outcome"], full["outcome"]
per_key = q["bytes"] / max(q["keys"], 1)
cli_secs = t1 - t0
cli = {"keys": cli_keys, "seconds": cli_secs, "keys_per_sec": cli_keys / cli_secs,
       "bytes_per_sec": cli_keys * per_key / cli_secs}
out = {
    "keys": keys,
    "hive_rebalance": q,
    "hive_rebalance_full_pace": f,
    "redis_cli_rebalance": cli,
    "keys_per_sec_ratio": q["keys_per_sec"] / cli["keys_per_sec"],
    "keys_per_sec_ratio_full_pace": f["keys_per_sec"] / cli["keys_per_sec"],
    "load_before": before,
    "load_during_rebalance": grow_load,
    "load_during_remove_shard": shrink_load,
    "rebalance_under_load": grow["outcome"],
    "remove_shard_under_load": shrink["outcome"],
    "throughput_ratio_rebalance": grow_load["ops_per_sec"] / before["ops_per_sec"],
    "throughput_ratio_remove_shard": shrink_load["ops_per_sec"] / before["ops_per_sec"],
    "proxy_during_moves": counts,
}
if as_json:
    print(json.dumps(out, indent=2))
    sys.exit()
mb = lambda b: b / 1e6
print(f"{keys} keys of 64 B; moving a quarter of them onto a 4th master, no load:")
print(f"  hive rebalance       {q['keys']:>8} keys in {q['seconds']:.2f} s: {q['keys_per_sec']:>9.0f} keys/s, {mb(q['bytes_per_sec']):.1f} MB/s (--pace 35, the default)")
print(f"  hive rebalance       {f['keys']:>8} keys in {f['seconds']:.2f} s: {f['keys_per_sec']:>9.0f} keys/s, {mb(f['bytes_per_sec']):.1f} MB/s (--pace 100)")
print(f"  redis-cli rebalance  {cli_keys:>8} keys in {cli_secs:.2f} s: {cli['keys_per_sec']:>9.0f} keys/s, {mb(cli['bytes_per_sec']):.1f} MB/s")
print(f"  hive / redis-cli: {out['keys_per_sec_ratio']:.2f}x (pace 35), {out['keys_per_sec_ratio_full_pace']:.2f}x (pace 100)")
print("50-client load through Hive (90% GET, zipfian):")
for name, l in (("alone", before), ("during rebalance", grow_load), ("during remove-shard", shrink_load)):
    print(f"  {name:<20} {l['ops_per_sec']:>8} ops/s ({l['ops_per_sec'] / before['ops_per_sec']:.2f}x), p50 {l['p50_us']} us, p99 {l['p99_us']} us, errors {l['errors']}")
g, s = grow["outcome"], shrink["outcome"]
print(f"  the moves under load: rebalance {g['keys']} keys in {g['seconds']:.1f} s, remove-shard {s['keys']} keys in {s['seconds']:.1f} s")
print("  the proxy during both: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
EOF

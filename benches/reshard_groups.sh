#!/usr/bin/env bash
# Resharding Sentinel groups (issue 28), on `hive up --mode sentinel`'s 3 groups with
# hive-module and Hive in front, KEYS keys of 64 bytes (zipf_load --preload), and a spare empty
# master with hive-module:
#   1. the load alone: 50 clients through Hive, 90% GET / 10% SET, zipfian keys, 5 s
#   2. `hive add-shard --name` of the spare, then `hive rebalance` under the same load (the
#      load runs exactly as long as the move), then `hive remove-shard` of it, same load
#   3. the same add + rebalance with no load, at --pace 100, for the handover's own speed
# Prints keys/s and MB/s, and the load's throughput, p99 round trip and errors before and
# during each move. Judges nothing: exits non-zero only when it cannot run.
# Usage: [PACE=1-100] bash benches/reshard_groups.sh [KEYS] [--json]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
KEYS=300000 JSON=0
for a in "$@"; do case $a in --json) JSON=1 ;; *) KEYS=$a ;; esac; done
log() { [ $JSON = 1 ] || echo "$@" >&2; }
cargo build -q --release -p hive-benches --example zipf_load
start_hive_up reshard-groups 7800 7890 sentinel
HIVE=${HIVE_TOOL:-$PWD/target/release/hive}
LOAD=("$PWD/target/release/examples/zipf_load" --addr 127.0.0.1:7890 --keys "$KEYS" --reads 0.9)
SO=$PWD/target/release/libhive_module.so
CONF=(--config "$dir/hive.toml")
SPARE=127.0.0.1:7880
redis-server --port 7880 --bind 127.0.0.1 --dir "$dir" --dbfilename spare.rdb --save '' --appendonly no \
  --loadmodule "$SO" --logfile "$dir/spare.log" &
BG+=($!)
for _ in $(seq 100); do redis-cli -p 7880 ping >/dev/null 2>&1 && break; sleep 0.1; done

log "preloading $KEYS keys through Hive"
"${LOAD[@]}" --preload >/dev/null 2>&1
before=$("${LOAD[@]}" --seconds 5 --json)
log "load alone: $(json_get "$before" "['ops_per_sec']") ops/s, p99 $(json_get "$before" "['p99_us']") us"

PACE=(${PACE:+--pace "$PACE"})
"$HIVE" add-shard "${CONF[@]}" $SPARE --name hive-spare >/dev/null
log "hive rebalance under load"
under_load "$HIVE" rebalance "${CONF[@]}" --json "${PACE[@]}"
grow=$MOVE_OUT grow_load=$LOAD_OUT
log "hive remove-shard under load"
under_load "$HIVE" remove-shard "${CONF[@]}" hive-spare --json "${PACE[@]}"
shrink=$MOVE_OUT shrink_load=$LOAD_OUT
"$HIVE" add-shard "${CONF[@]}" $SPARE --name hive-spare2 >/dev/null
log "hive rebalance --pace 100, no load"
full=$("$HIVE" rebalance "${CONF[@]}" --pace 100 --json)
"$HIVE" remove-shard "${CONF[@]}" hive-spare2 --pace 100 --json >/dev/null

python3 - "$before" "$grow" "$grow_load" "$shrink" "$shrink_load" "$full" "$JSON" "$KEYS" <<'PY'
import json, sys
before, grow, grow_load, shrink, shrink_load, full = (json.loads(a) for a in sys.argv[1:7])
as_json, keys = sys.argv[7] == "1", int(sys.argv[8])
f = full["outcome"]
out = {
    "keys": keys,
    "hive_rebalance_full_pace": f,
    "load_before": before,
    "load_during_rebalance": grow_load,
    "load_during_remove_shard": shrink_load,
    "rebalance_under_load": grow["outcome"],
    "remove_shard_under_load": shrink["outcome"],
    "throughput_ratio_rebalance": grow_load["ops_per_sec"] / before["ops_per_sec"],
    "throughput_ratio_remove_shard": shrink_load["ops_per_sec"] / before["ops_per_sec"],
}
if as_json:
    print(json.dumps(out, indent=2))
    sys.exit()
mb = lambda b: b / 1e6
print(f"{keys} keys of 64 B over 3 Sentinel groups; a quarter handed to a 4th group:")
print(f"  hive rebalance, no load, --pace 100: {f['keys']} keys in {f['seconds']:.2f} s: {f['keys_per_sec']:.0f} keys/s, {mb(f['bytes_per_sec']):.1f} MB/s")
print("50-client load through Hive (90% GET, zipfian):")
for name, l in (("alone", before), ("during rebalance", grow_load), ("during remove-shard", shrink_load)):
    print(f"  {name:<20} {l['ops_per_sec']:>8} ops/s ({l['ops_per_sec'] / before['ops_per_sec']:.2f}x), p50 {l['p50_us']} us, p99 {l['p99_us']} us, errors {l['errors']}")
g, s = grow["outcome"], shrink["outcome"]
print(f"  the moves under load: rebalance {g['keys']} keys in {g['seconds']:.1f} s, remove-shard {s['keys']} keys in {s['seconds']:.1f} s")
PY

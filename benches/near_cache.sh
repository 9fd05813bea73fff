#!/usr/bin/env bash
# The near cache's benchmark (issue 29): a skewed load (benches/examples/zipf_load.rs: zipfian
# keys, s = 0.99, over 1,000,000 keys of 64 bytes, 95% GET / 5% SET, 50 clients, P1 and P16)
# against, in interleaved rounds:
#   direct    one redis-server
#   hive      Hive (static mode, in front of it), no cache
#   cache     Hive with [cache] enabled (admit = "all", max_memory = 512mb), warmed first
#   feed      Hive with one idle CLIENT TRACKING connection (its per-master feed runs), plain load
#   tracking  Hive, clients with CLIENT TRACKING on that cache nothing (the cost of tracking)
#   client    Hive, clients with CLIENT TRACKING on that keep what they read (client-side cache)
#   direct_tracking, direct_client   the same two loads against redis-server itself, so
#             the cost the invalidations carry by themselves shows apart from Hive's
#   ceiling   benches/examples/ceiling.rs: a one-thread server that answers every GET with a
#             fixed value and stores nothing, the most any cache on that core could give
#   direct_ro, cache_ro   direct and cache with 100% reads (no write ends a cached entry)
# The cache's hit ratio is read per run (CONFIG RESETSTAT before each).
# Server-side processes (redis-server, every Hive with one worker thread) are pinned to CPU1,
# the load to CPU0. Then the invalidation delay: a tracking client of Hive, a write made on the
# node, the time from the write's reply to the invalidation (p50/p99 over 2,000 writes).
# Judges nothing: exits non-zero only when it cannot run.
# Usage: bash benches/near_cache.sh [rounds] [--json]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
ROUNDS=3 JSON=0 SECONDS_EACH=${SECONDS_EACH:-5}
for a in "$@"; do case $a in --json) JSON=1 ;; *) ROUNDS=$a ;; esac; done
cargo build -q --release -p hive-cli
cargo build -q --release -p hive-benches --example zipf_load --example ceiling
HIVE=$PWD/target/release/hive
LOAD=(taskset -c 0 "$PWD/target/release/examples/zipf_load")
scratch
log() { [ $JSON = 1 ] || echo "$@" >&2; }

# Ports: redis 7870, hive 7871, hive with the cache 7872, hive with a tracking client 7873,
# the ceiling 7879.
taskset -c 1 "$PWD/target/release/examples/ceiling" 127.0.0.1:7879 64 &
PIDS+=($!)
taskset -c 1 redis-server --port 7870 --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
  --logfile "$TMP/redis.log" &
PIDS+=($!)
printf '[proxy]\nthreads = 1\n' >"$TMP/plain.toml"
printf '[proxy]\nthreads = 1\n[cache]\nenabled = true\nadmit = "all"\nmax_memory = "512mb"\n' >"$TMP/cache.toml"
for _ in $(seq 100); do redis-cli -p 7870 ping >/dev/null 2>&1 && break; sleep 0.1; done
taskset -c 1 "$HIVE" proxy --config "$TMP/plain.toml" --static 127.0.0.1:7870 --listen 127.0.0.1:7871 >"$TMP/plain.log" 2>&1 &
PIDS+=($!)
taskset -c 1 "$HIVE" proxy --config "$TMP/cache.toml" --static 127.0.0.1:7870 --listen 127.0.0.1:7872 >"$TMP/cache.log" 2>&1 &
PIDS+=($!)
taskset -c 1 "$HIVE" proxy --config "$TMP/plain.toml" --static 127.0.0.1:7870 --listen 127.0.0.1:7873 >"$TMP/feed.log" 2>&1 &
PIDS+=($!)
for p in 7871 7872 7873; do
  for _ in $(seq 100); do redis-cli -p $p ping >/dev/null 2>&1 && break; sleep 0.1; done
done
for _ in $(seq 100); do redis-cli -p 7872 info | grep -q 'cache_ready:1' && break; sleep 0.1; done
"${LOAD[@]}" --addr 127.0.0.1:7873 --hold >"$TMP/hold.out" &
PIDS+=($!)
for _ in $(seq 100); do grep -q holding "$TMP/hold.out" 2>/dev/null && break; sleep 0.1; done
log "preloading 1,000,000 keys"
"${LOAD[@]}" --addr 127.0.0.1:7870 --preload --keys 1000000 2>/dev/null
log "warming the near cache (20 s at P16)"
"${LOAD[@]}" --addr 127.0.0.1:7872 --pipeline 16 --seconds 20 >/dev/null
redis-cli -p 7872 config resetstat >/dev/null

declare -A RES
TARGETS=(direct hive cache feed tracking client direct_tracking direct_client ceiling direct_ro cache_ro)
declare -A HIT
for r in $(seq "$ROUNDS"); do
  for P in 1 16; do
    for t in "${TARGETS[@]}"; do
      case $t in
        direct) args=(--addr 127.0.0.1:7870) ;;
        hive) args=(--addr 127.0.0.1:7871) ;;
        cache) args=(--addr 127.0.0.1:7872) ;;
        tracking) args=(--addr 127.0.0.1:7871 --track) ;;
        client) args=(--addr 127.0.0.1:7871 --client-cache) ;;
        feed) args=(--addr 127.0.0.1:7873) ;;
        direct_tracking) args=(--addr 127.0.0.1:7870 --track) ;;
        direct_client) args=(--addr 127.0.0.1:7870 --client-cache) ;;
        ceiling) args=(--addr 127.0.0.1:7879) ;;
        direct_ro) args=(--addr 127.0.0.1:7870 --reads 1.0) ;;
        cache_ro) args=(--addr 127.0.0.1:7872 --reads 1.0) ;;
      esac
      redis-cli -p 7872 config resetstat >/dev/null
      out=$("${LOAD[@]}" "${args[@]}" --pipeline "$P" --seconds "$SECONDS_EACH" --json)
      rps=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['ops_per_sec'])" "$out")
      RES[$t,$P]+="$rps "
      if [ "$t" = cache ] || [ "$t" = cache_ro ]; then
        HIT[$t,$P]+="$(redis-cli -p 7872 info | awk -F: '/^cache_hit_ratio/ {print $2}' | tr -d '\r') "
      fi
      log "round $r P$P $t: $rps ops/s"
    done
  done
done
hit=$(echo "${HIT[cache,1]} ${HIT[cache,16]}" | median)
hits=$(for t in cache cache_ro; do for P in 1 16; do echo -n "\"$t P$P\":$(echo "${HIT[$t,$P]}" | median),"; done; done)
delay=$("${LOAD[@]}" --delay --addr 127.0.0.1:7871 --node 127.0.0.1:7870 --samples 2000 --json)

rows=()
for P in 1 16; do
  d=$(echo "${RES[direct,$P]}" | median)
  h=$(echo "${RES[hive,$P]}" | median)
  for t in "${TARGETS[@]}"; do
    v=$(echo "${RES[$t,$P]}" | median)
    rows+=("$t P$P $v $(python3 -c "print(round($v/$d,3), round($v/$h,3))")")
  done
done
if [ $JSON = 1 ]; then
  table=$(printf '%s\n' "${rows[@]}" | rows_json target pipeline ops_per_sec vs_direct vs_hive)
  echo "{\"rounds\":$ROUNDS,\"cache_hit_ratio\":$hit,\"hit_ratios\":{${hits%,}},\"invalidation_delay\":$delay,\"rows\":$table}"
else
  echo "zipf_load: zipfian s=0.99 over 1,000,000 keys, 95% GET, -c 50, ${SECONDS_EACH} s each, median of $ROUNDS interleaved rounds"
  printf '%-10s %-4s %12s %10s %9s\n' target P ops/s vs_direct vs_hive
  printf '%s\n' "${rows[@]}" | awk '{printf "%-10s %-4s %12.0f %10s %9s\n", $1, $2, $3, $4, $5}'
  echo "near cache hit ratio, median of the measured runs: $hit"
  for t in cache cache_ro; do for P in 1 16; do
    echo "  $t P$P: $(echo "${HIT[$t,$P]}" | median)"
  done; done
  echo "invalidation delay (write on the node -> push to a tracking client of Hive): $delay"
fi
